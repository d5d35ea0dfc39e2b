import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../../ports/index.ts";
import { createEngine, type Engine } from "../../../services/inference/engine.ts";
import { ContextOverflowError, EngineOverloadedError, InvalidGenerateRequestError } from "../../../services/inference/errors.ts";
import { openWeights } from "../../../services/model/safetensors.ts";
import { collect, greedyReference, params, referenceLogprobs, type Collected } from "../../helpers/generate.ts";
import { expectClose } from "../../helpers/compare.ts";
import { findModel } from "../../helpers/model-path.ts";

const KNOWN_ANSWER =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";

describe("engine on stories260k", () => {
  let engine: Engine;
  let cacheDir: string;
  const bos = (text: string) => engine.tokenize(text);

  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-"));
    engine = await createEngine({ modelDir: findModel("stories260k"), cacheDir, maxBatch: 8, maxQueue: 16, prefillChunk: 5 });
  });
  afterAll(async () => {
    await engine.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it("streams the known greedy answer from BOS, text equal to the decoded tokens", async () => {
    const submitted = performance.now();
    let firstSeen = Infinity;
    const result = await collect(engine.generate({ promptTokens: [1], params: params({ maxTokens: 45, logprobs: 0 }) }), () => {
      firstSeen = Math.min(firstSeen, performance.now());
    });
    const finished = performance.now();
    expect(result.text.startsWith(KNOWN_ANSWER)).toBe(true);
    expect(result.text).toBe(engine.tokenizer.decode(result.tokens, { skipSpecialTokens: true }));
    expect(result.done).toMatchObject({ finishReason: "length", promptTokens: 1, completionTokens: 45 });
    // Timings are bounded by what the caller saw: the first token before it arrived, the total before the end.
    expect(result.done!.timings.firstTokenMs).toBeLessThanOrEqual(firstSeen - submitted);
    expect(result.done!.timings.totalMs).toBeLessThanOrEqual(finished - submitted);
    expect(result.done!.timings.firstTokenMs).toBeLessThan(result.done!.timings.totalMs);
    // Tokens and logprobs follow the plain reference forward, not only the known text.
    const weights = await openWeights(findModel("stories260k"));
    try {
      const lookup = (n: string) => weights.getF32(n);
      expect(result.tokens).toEqual(greedyReference(engine.config, lookup, [1], 45));
      expectClose(result.logprobs, referenceLogprobs(engine.config, lookup, [1], result.tokens), 1e-4, "logprobs vs reference");
    } finally {
      weights.close();
    }
  });

  it("gives each of a batch of prompts of different lengths the tokens and logprobs it gets alone, with a late joiner", async () => {
    const prompts = ["Once upon a time", "The little dog ran to the big tree and", "Tom", "She was sad because her toy was broken. Her mom said"].map(bos);
    const request = (promptTokens: number[]): GenerateRequest => ({ promptTokens, params: params({ maxTokens: 30, logprobs: 1 }) });
    const alone: Collected[] = [];
    for (const p of prompts) alone.push(await collect(engine.generate(request(p))));

    let joined: Promise<Collected> | undefined;
    const first = collect(engine.generate(request(prompts[0])), (n) => {
      if (n === 10) joined = collect(engine.generate(request(prompts[3])));
    });
    const together = await Promise.all([first, ...prompts.slice(1, 3).map((p) => collect(engine.generate(request(p))))]);
    together.push(await joined!);
    together.forEach((got, i) => {
      expect(got.tokens).toEqual(alone[i].tokens);
      expectClose(got.logprobs, alone[i].logprobs, 1e-4, `request ${i} logprobs`);
    });
    expect(engine.stats().peakBatch).toBe(4);
  });

  it("holds key/value cache for the rows it runs, not for maxBatch rows, and none once idle", async () => {
    const { numLayers, numKvHeads, headDim } = engine.config;
    // One row of `columns` cache columns: keys and values of every layer, and the mask.
    const rowBytes = (columns: number) => columns * (2 * numLayers * numKvHeads * headDim * 4 + 8);
    let during = 0;
    const result = await collect(engine.generate({ promptTokens: bos("Once upon a time"), params: params({ maxTokens: 40, logprobs: 0 }) }), (n) => {
      if (n === 20) during = engine.stats().kvCacheBytes;
    });
    const columns = Math.ceil((result.done!.promptTokens + 40) / 32) * 32;
    expect(during).toBeGreaterThan(0);
    expect(during).toBeLessThanOrEqual(rowBytes(columns)); // maxBatch is 8: eight rows would be 8× this
    while (engine.stats().running > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(engine.stats().kvCacheBytes).toBe(0);
  });

  it("prefills a long prompt in chunks while a short request starts and finishes, and cancels it mid-prefill", async () => {
    const long = bos("The little dog ran to the big tree and barked at the bird. ".repeat(12));
    const chunks = Math.ceil(long.length / 5);
    expect(chunks).toBeGreaterThan(20);
    const alone = await collect(engine.generate({ promptTokens: long, params: params({ maxTokens: 5, logprobs: 0 }) }));
    const shortRequest = (maxTokens: number) => engine.generate({ promptTokens: bos("Tom"), params: params({ maxTokens, logprobs: 0 }) });

    // Explicit synchronisation: the long prompt is submitted once the short request has its first
    // token, so its prefill group is its own and starts while the short one decodes (4 more steps,
    // against the long prompt's 20+ chunks), whatever the order of microtasks.
    const order: string[] = [];
    let chunksBefore = 0;
    let longRun: Promise<Collected> | undefined;
    await collect(shortRequest(5), (n) => {
      if (n !== 1) return;
      chunksBefore = engine.stats().prefillChunks;
      longRun = collect(engine.generate({ promptTokens: long, params: params({ maxTokens: 5, logprobs: 0 }) }), () => order.push("long:token"));
    });
    order.push("short:done");
    const both = await longRun!;
    expect(both.tokens).toEqual(alone.tokens);
    expect(engine.stats().prefillChunks - chunksBefore).toBe(chunks);
    // The short request finished while the long prompt was still being prefilled.
    expect(order.slice(0, 2)).toEqual(["short:done", "long:token"]);

    // The same way, a long prompt queued at the short request's first token is still being
    // prefilled when the short one is done two steps later, and is cancelled then.
    const controller = new AbortController();
    let cancelledTokens = 0;
    let cancelled: Promise<Collected> | undefined;
    const before = engine.stats().prefillChunks;
    await collect(shortRequest(3), (n) => {
      if (n === 1) cancelled = collect(engine.generate({ promptTokens: long, params: params({ maxTokens: 5, logprobs: 0 }), signal: controller.signal }), () => cancelledTokens++);
    });
    expect(engine.stats().prefilling).toBe(1);
    controller.abort(new Error("gone"));
    await expect(cancelled!).rejects.toThrow("gone");
    expect(cancelledTokens).toBe(0);
    expect(engine.stats().prefillChunks - before).toBeLessThan(1 + chunks);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0, prefilling: 0 });
  });

  it("reports the chosen token's logprob and the requested number of alternatives", async () => {
    let events = 0;
    for await (const e of engine.generate({ promptTokens: [1], params: params({ maxTokens: 8, logprobs: 3 }) })) {
      if (e.type !== "text" || !e.logprob) continue;
      events++;
      const { logprob, top, bytes, token } = e.logprob;
      expect(top).toHaveLength(3);
      expect(top[0].logprob).toBeGreaterThanOrEqual(top[1].logprob);
      expect(top[1].logprob).toBeGreaterThanOrEqual(top[2].logprob);
      expect(logprob).toBeCloseTo(top[0].logprob, 6); // greedy picks the most likely token
      expect(logprob).toBeLessThan(0);
      expect(new TextDecoder().decode(Uint8Array.from(bytes))).toBe(token);
    }
    expect(events).toBe(8);
  });

  it("stops at a stop sequence, excluding it from the text", async () => {
    const result = await collect(engine.generate({ promptTokens: [1], params: params({ maxTokens: 60, stop: ["Lily"] }) }));
    expect(result.text).toBe("Once upon a time, there was a little girl named ");
    expect(result.done?.finishReason).toBe("stop");
  });

  it("rejects bad requests before any work, with clear errors", () => {
    expect(() => engine.generate({ promptTokens: [], params: params() })).toThrow(InvalidGenerateRequestError);
    expect(() => engine.generate({ promptTokens: [1, 9999], params: params() })).toThrow(/not in the vocabulary/);
    expect(() => engine.generate({ promptTokens: [1], params: params(), adapter: "tenant-a" })).toThrow(/adapter "tenant-a" requested, but this engine serves no adapters/);
    expect(() => engine.generate({ promptTokens: [1], params: params({ maxTokens: 0 }) })).toThrow(/maxTokens must be a positive integer/);
    const long = new Array(500).fill(403);
    let error: unknown;
    try {
      engine.generate({ promptTokens: long, params: params({ maxTokens: 20 }) });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ContextOverflowError);
    expect(error).toMatchObject({ promptTokens: 500, maxTokens: 20, contextLength: 512 });
    expect((error as Error).message).toMatch(/512 tokens.*520 tokens \(500 in the messages, 20 in the completion\)/);
  });

  it("cancels a running request at once and keeps serving the others", async () => {
    const controller = new AbortController();
    const other = collect(engine.generate({ promptTokens: bos("Tom"), params: params({ maxTokens: 30, logprobs: 0 }) }));
    const cancelled = collect(engine.generate({ promptTokens: [1], params: params({ maxTokens: 200, logprobs: 0 }), signal: controller.signal }), (n) => {
      if (n === 5) controller.abort(new Error("client went away"));
    });
    await expect(cancelled).rejects.toThrow("client went away");
    const result = await other;
    expect(result.done?.completionTokens).toBe(30);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0, prefilling: 0 });
  });
});

describe("engine queue bound", () => {
  it("rejects with EngineOverloadedError when the queue is full, and serves the queued ones", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-"));
    const engine = await createEngine({ modelDir: findModel("stories260k"), cacheDir, maxBatch: 1, maxQueue: 2 });
    try {
      const request = { promptTokens: [1], params: params({ maxTokens: 5 }) };
      const a = collect(engine.generate(request));
      const b = collect(engine.generate(request));
      expect(() => engine.generate(request)).toThrow(EngineOverloadedError);
      expect(() => engine.generate(request)).toThrow(/2 requests already queued \(limit 2\)/);
      const [ra, rb] = await Promise.all([a, b]);
      expect(ra.text).toBe(rb.text);
      expect(engine.stats().sessionsCreated).toBe(2); // prefill + decode graphs
    } finally {
      await engine.close();
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});
