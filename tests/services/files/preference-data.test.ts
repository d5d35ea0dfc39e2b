/**
 * Preference (DPO) files: OpenAI's format parsed line by line, every bad line refused with its number
 * and reason, the shape deciding the kind at upload, and both answers checked against the context.
 */
import { describe, expect, it } from "vitest";
import { PlaneError } from "../../../ports/errors.ts";
import { looksLikePreferenceData, parsePreferenceData } from "../../../services/files/preference-data.ts";
import { validateTrainingFile } from "../../../services/files/validate.ts";
import { wordTokenizer } from "./helpers.ts";

const LIMITS = { maxBytes: 1 << 20, maxLines: 1000 };
const bytes = (text: string) => new TextEncoder().encode(text);
const pair = (chosen: string, rejected: string, prompt = "one two three") =>
  JSON.stringify({ input: { messages: [{ role: "user", content: prompt }] }, preferred_output: [{ role: "assistant", content: chosen }], non_preferred_output: [{ role: "assistant", content: rejected }] });

describe("parsePreferenceData", () => {
  it("reads prompts and both answers, with line numbers, skipping blank lines", () => {
    const system = JSON.stringify({ input: { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }] }, preferred_output: [{ role: "assistant", content: "Hello." }], non_preferred_output: [{ role: "assistant", content: "Go away." }] });
    const { examples, errors } = parsePreferenceData(`${pair("yes", "no")}\n\n${system}\r\n`);
    expect(errors).toEqual([]);
    expect(examples).toEqual([
      { line: 1, messages: [{ role: "user", content: "one two three" }], chosen: "yes", rejected: "no" },
      { line: 3, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }], chosen: "Hello.", rejected: "Go away." },
    ]);
  });

  it("reports every bad line with its number and reason", () => {
    const bad = (v: unknown) => JSON.stringify(v);
    const user = [{ role: "user", content: "q" }];
    const a = (content: string) => [{ role: "assistant", content }];
    const lines = [
      "{not json",
      bad([1]),
      bad({ preferred_output: a("x"), non_preferred_output: a("y") }),
      bad({ input: { messages: [] }, preferred_output: a("x"), non_preferred_output: a("y") }),
      bad({ input: { messages: [{ role: "robot", content: "q" }] }, preferred_output: a("x"), non_preferred_output: a("y") }),
      bad({ input: { messages: user }, non_preferred_output: a("y") }),
      bad({ input: { messages: user }, preferred_output: a("   "), non_preferred_output: a("y") }),
      bad({ input: { messages: user }, preferred_output: [{ role: "user", content: "x" }], non_preferred_output: a("y") }),
      bad({ input: { messages: user }, preferred_output: [...a("x"), ...a("z")], non_preferred_output: a("y") }),
      bad({ input: { messages: user }, preferred_output: a("x"), non_preferred_output: a("x") }),
      bad({ input: { messages: [...user, ...a("earlier")] }, preferred_output: a("x"), non_preferred_output: a("y") }),
      pair("fine", "also fine"),
    ];
    const { examples, errors } = parsePreferenceData(lines.join("\n"));
    expect(examples.map((e) => e.line)).toEqual([12]);
    expect(errors.map((e) => e.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(errors.map((e) => e.reason)).toEqual([
      expect.stringContaining("not valid JSON"),
      "not a JSON object",
      'no "input" object',
      '"input.messages" is empty',
      expect.stringMatching(/^input: message 1 has unknown role "robot"/),
      'no "preferred_output" array',
      "preferred_output: message 1 (assistant) has empty content",
      "preferred_output: the message's role is user, expected assistant",
      '"preferred_output" must hold exactly one message (it has 2)',
      "preferred_output and non_preferred_output are the same answer",
      expect.stringContaining("the last message is an assistant turn"),
    ]);
  });

  it("is told apart from a chat file by its first line's shape", () => {
    expect(looksLikePreferenceData(`\n${pair("a", "b")}\n`)).toBe(true);
    expect(looksLikePreferenceData(JSON.stringify({ messages: [] }))).toBe(false);
    expect(looksLikePreferenceData("not json")).toBe(false);
    expect(looksLikePreferenceData("")).toBe(false);
  });
});

describe("validateTrainingFile with a preference file", () => {
  it("counts pairs and the tokens of both conversations", async () => {
    const tokenizer = wordTokenizer();
    // <user> one two three <assistant> four  +  <user> one two three <assistant> five six
    expect(await validateTrainingFile(bytes(`${pair("four", "five six")}\n`), tokenizer, LIMITS)).toEqual({ examples: 1, tokens: 6 + 7 });
    expect(tokenizer.calls).toBe(2);
  });

  it("refuses the whole file with each bad line once, an answer too long for the context included", async () => {
    const tokenizer = wordTokenizer(8);
    const long = "w ".repeat(10).trim();
    const text = [pair("ok", "fine"), pair(long, long.replace(/w/g, "v")), "{", pair("x", "y")].join("\n");
    const error = await validateTrainingFile(bytes(text), tokenizer, LIMITS).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PlaneError);
    const e = error as PlaneError;
    expect(e.kind).toBe("invalid_request");
    expect(e.code).toBe("invalid_training_file");
    const lines = e.message.split("\n");
    expect(lines[0]).toBe("The training file has 2 invalid lines; nothing was stored.");
    expect(lines[1]).toMatch(/^line 2: 15 tokens after the chat template, longer than the model's context of 8$/);
    expect(lines[2]).toMatch(/^line 3: not valid JSON/);
  });
});
