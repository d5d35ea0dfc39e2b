/**
 * The Inference port's contract: one base model behind `encode` and a streaming `generate`. The
 * factory gives a plane on a model with a context window of at least 64 tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlaneError, type PlaneErrorKind } from "../../ports/errors.ts";
import type { GenerateEvent, GenerateRequest, Inference, ModelInfo, SamplingParams } from "../../ports/inference.ts";

const STORY = "Once upon a time, there was a little girl named Lily.";

export function params(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return { maxTokens: 8, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [], ...overrides };
}

/** Every event of one generation, or the error that ended it (raised at the call or by the stream). */
async function run(inference: Inference, request: GenerateRequest, onEvent?: (e: GenerateEvent) => void): Promise<{ events: GenerateEvent[]; error?: unknown }> {
  const events: GenerateEvent[] = [];
  try {
    for await (const event of inference.generate(request)) {
      events.push(event);
      onEvent?.(event);
    }
    return { events };
  } catch (error) {
    return { events, error };
  }
}

function kindOf(error: unknown): PlaneErrorKind | "none" {
  if (error === undefined) return "none";
  if (error instanceof PlaneError) return error.kind;
  throw error;
}

export function inferenceContract(name: string, open: () => Promise<Inference>, expected: Partial<ModelInfo> = {}): void {
  describe(`Inference port: ${name}`, () => {
    let inference: Inference;
    let info: ModelInfo;
    /** A text whose tokens overflow the context window. */
    let tooLong: string;
    beforeAll(async () => {
      inference = await open();
      info = await inference.model();
      tooLong = "the cat sat on the mat. ".repeat(info.contextLength);
    });
    afterAll(async () => {
      await inference?.close();
    });

    it("describes its model", () => {
      expect(info).toMatchObject(expected);
      expect(info.id).not.toBe("");
      expect(info.contextLength).toBeGreaterThanOrEqual(64);
      expect(info.vocabSize).toBeGreaterThan(2);
    });

    describe("encode", () => {
      it("takes the first candidate that fits", async () => {
        const encoded = await inference.encode({ candidates: [{ text: STORY }, { text: "Tom" }] });
        expect(encoded).toMatchObject({ index: 0, fits: true, text: STORY });
        expect(encoded.tokens.length).toBeGreaterThan(3);
        expect(encoded.tokens.every((t) => Number.isInteger(t) && t >= 0 && t < info.vocabSize)).toBe(true);
        expect(encoded.offsets).toBeUndefined();
      });

      it("skips candidates that leave no room for `reserve` completion tokens", async () => {
        const near = Array.from({ length: info.contextLength - 4 }, () => 1);
        const skipped = await inference.encode({ candidates: [{ tokens: near }, { text: STORY }], reserve: 10 });
        expect(skipped).toMatchObject({ index: 1, fits: true, text: STORY });
        const kept = await inference.encode({ candidates: [{ tokens: near }, { text: STORY }], reserve: 4 });
        expect(kept).toMatchObject({ index: 0, fits: true, tokens: near });
        const overflowing = await inference.encode({ candidates: [{ text: tooLong }, { text: "Tom" }] });
        expect(overflowing).toMatchObject({ index: 1, fits: true, text: "Tom" });
      });

      it("gives the last candidate with fits false when none fits", async () => {
        const encoded = await inference.encode({ candidates: [{ text: tooLong }, { text: `${tooLong} again` }] });
        expect(encoded).toMatchObject({ index: 1, fits: false, text: `${tooLong} again` });
        expect(encoded.tokens.length).toBeGreaterThan(info.contextLength);
      });

      it("gives token ids back unchanged", async () => {
        const tokens = [1, 5, 7, info.vocabSize - 1];
        const encoded = await inference.encode({ candidates: [{ tokens }] });
        expect(encoded).toMatchObject({ index: 0, fits: true, tokens });
        expect(typeof encoded.text).toBe("string");
      });

      it("gives offsets when asked: one per token, from 0, monotone, within the text", async () => {
        const { text, tokens, offsets } = await inference.encode({ candidates: [{ text: STORY }], offsets: true });
        expect(offsets).toHaveLength(tokens.length);
        expect(offsets![0]).toBe(0);
        offsets!.forEach((offset, i) => {
          expect(offset).toBeLessThanOrEqual(text.length);
          if (i > 0) expect(offset).toBeGreaterThanOrEqual(offsets![i - 1]);
        });
        expect(offsets!.at(-1)).toBeGreaterThan(0);
      });
    });

    describe("generate", () => {
      it("streams text events, then one done whose counts match", async () => {
        const { tokens } = await inference.encode({ candidates: [{ text: STORY }] });
        const { events, error } = await run(inference, { promptTokens: tokens, params: params({ maxTokens: 8, logprobs: 0 }) });
        expect(error).toBeUndefined();
        const done = events.at(-1);
        expect(done?.type).toBe("done");
        expect(events.filter((e) => e.type === "done")).toHaveLength(1);
        const texts = events.filter((e) => e.type === "text");
        expect(texts.map((e) => e.text).join("")).not.toBe("");
        if (done?.type !== "done") return;
        expect(done).toMatchObject({ finishReason: "length", promptTokens: tokens.length, completionTokens: 8 });
        // One text event per sampled token carries its logprob (a final flush may add text without one).
        expect(texts.filter((e) => e.logprob !== undefined)).toHaveLength(done.completionTokens);
        expect(done.timings.totalMs).toBeGreaterThanOrEqual(done.timings.firstTokenMs);
      });

      it("ends the stream early when its signal aborts", async () => {
        const controller = new AbortController();
        let seen = 0;
        const { events } = await run(inference, { promptTokens: [1], params: params({ maxTokens: 200 }), signal: controller.signal }, (e) => {
          if (e.type === "text" && ++seen === 2) controller.abort(new Error("client went away"));
        });
        expect(seen).toBeGreaterThanOrEqual(2);
        expect(events.filter((e) => e.type === "text").length).toBeLessThan(200);
        expect(events.some((e) => e.type === "done" && e.completionTokens === 200)).toBe(false);
      });

      it("refuses an empty prompt and tokens outside the vocabulary (invalid_request)", async () => {
        expect(kindOf((await run(inference, { promptTokens: [], params: params() })).error)).toBe("invalid_request");
        expect(kindOf((await run(inference, { promptTokens: [1, info.vocabSize], params: params() })).error)).toBe("invalid_request");
        expect(kindOf((await run(inference, { promptTokens: [1, -1], params: params() })).error)).toBe("invalid_request");
      });

      it("refuses a prompt plus maxTokens over the context window (context_length, with the counts)", async () => {
        const promptTokens = Array.from({ length: info.contextLength - 5 }, () => 1);
        const { events, error } = await run(inference, { promptTokens, params: params({ maxTokens: 10 }) });
        expect(events).toEqual([]);
        expect(kindOf(error)).toBe("context_length");
        expect((error as PlaneError).details).toEqual({ promptTokens: info.contextLength - 5, maxTokens: 10, contextLength: info.contextLength });
        // Exactly at the window it runs.
        const fits = await run(inference, { promptTokens: promptTokens.slice(5), params: params({ maxTokens: 10 }) });
        expect(fits.error).toBeUndefined();
      });
    });
  });
}
