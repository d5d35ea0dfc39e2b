import { describe, expect, it } from "vitest";
import { PlaneError } from "../../../ports/errors.ts";
import { MAX_REPORTED, validateTrainingFile } from "../../../services/files/validate.ts";
import { wordTokenizer } from "./helpers.ts";

const LIMITS = { maxBytes: 1 << 20, maxLines: 1000 };
const bytes = (text: string) => new TextEncoder().encode(text);
const example = (answer: string) => JSON.stringify({ messages: [{ role: "user", content: "one two three" }, { role: "assistant", content: answer }] });

async function refusal(run: Promise<unknown>): Promise<PlaneError> {
  const error = await run.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(PlaneError);
  return error as PlaneError;
}

describe("validateTrainingFile", () => {
  it("counts examples and tokens after the chat template, one encode per example", async () => {
    const tokenizer = wordTokenizer();
    const summary = await validateTrainingFile(bytes(`${example("four")}\n\n${example("four five")}\n`), tokenizer, LIMITS);
    // <user> one two three <assistant> four [five]
    expect(summary).toEqual({ examples: 2, tokens: 6 + 7 });
    expect(tokenizer.calls).toBe(2);
  });

  it("sends the messages without their weights", async () => {
    const tokenizer = wordTokenizer();
    const seen: unknown[] = [];
    const encode = tokenizer.encode;
    tokenizer.encode = async (request) => (seen.push(request.candidates), encode(request));
    await validateTrainingFile(bytes(JSON.stringify({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b", weight: 1 }] })), tokenizer, LIMITS);
    expect(seen).toEqual([[{ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }] }]]);
  });

  it("reports structural and length errors together, in line order", async () => {
    const text = [example("x ".repeat(20)), "nope", example("ok")].join("\n");
    const error = await refusal(validateTrainingFile(bytes(text), wordTokenizer(16), LIMITS));
    expect(error).toMatchObject({ kind: "invalid_request", code: "invalid_training_file", param: "file", details: { invalidLines: 2, firstInvalidLine: 1 } });
    expect(error.message.split("\n")).toEqual([
      "The training file has 2 invalid lines; nothing was stored.",
      "line 1: 25 tokens after the chat template, longer than the model's context of 16",
      expect.stringMatching(/^line 2: not valid JSON/),
    ]);
  });

  it(`lists the first ${MAX_REPORTED} bad lines and counts the rest`, async () => {
    const error = await refusal(validateTrainingFile(bytes("x\n".repeat(120)), wordTokenizer(), LIMITS));
    const lines = error.message.split("\n");
    expect(lines[0]).toBe("The training file has 120 invalid lines; nothing was stored.");
    expect(lines).toHaveLength(1 + MAX_REPORTED + 1);
    expect(lines[MAX_REPORTED]).toMatch(/^line 50: /);
    expect(lines.at(-1)).toBe("... and 70 more");
    expect(error.details.invalidLines).toBe(120);
  });

  it("refuses over the limits before parsing, and bytes that are not UTF-8", async () => {
    const tokenizer = wordTokenizer();
    expect(await refusal(validateTrainingFile(bytes("a".repeat(11)), tokenizer, { maxBytes: 10, maxLines: 10 }))).toMatchObject({ kind: "too_large", code: "file_too_large" });
    expect(await refusal(validateTrainingFile(bytes(`${example("a")}\n`.repeat(11)), tokenizer, { maxBytes: 1 << 20, maxLines: 10 }))).toMatchObject({ kind: "too_large", code: "too_many_lines" });
    expect(await refusal(validateTrainingFile(new Uint8Array([0x7b, 0xff, 0xfe]), tokenizer, LIMITS))).toMatchObject({ kind: "invalid_request", message: expect.stringMatching(/UTF-8/) });
    expect(tokenizer.calls).toBe(0);
    expect(await validateTrainingFile(bytes(`${example("a")}\n`.repeat(10)), tokenizer, { maxBytes: 1 << 20, maxLines: 10 })).toMatchObject({ examples: 10 });
  });

  it("accepts a byte-order mark at the start", async () => {
    expect(await validateTrainingFile(bytes(`\uFEFF${example("a")}`), wordTokenizer(), LIMITS)).toMatchObject({ examples: 1 });
  });
});
