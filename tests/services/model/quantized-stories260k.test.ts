/**
 * stories260k with quantized base weights through the engine's graphs (bench/quantized-quality.ts measures):
 * int8 keeps F32's greedy answer; int4's divergence is bounded by perplexity; each format has its own
 * compile cache entry.
 *
 * Measured (perplexity of the fixed text; max |Δlogit| against the dequantized reference): F32 2.126;
 * int8 2.105, 1.01 (4.6% of the largest logit); int4 2.374, 0.43 (2.0%). int8's greedy ids equal F32's for
 * 57 tokens from "Once upon a time"; the 58th is a near tie between two tokens that int8 breaks the other
 * way, so the test compares 48 and bounds the rest by perplexity. int8's logits are further from its
 * dequantized reference than int4's because DynamicQuantizeMatMul rounds the activations with one uint8
 * scale per tensor (the whole prompt in prefill), MatMulNBits per block of 32.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GREEDY_PROMPT, quantizedQuality, type FormatQuality } from "../../../bench/quantized-quality.ts";
import { createEngine } from "../../../services/inference/engine.ts";
import { compileKey } from "../../../services/model/compile-cache.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { findModel } from "../../helpers/model-path.ts";

describe("stories260k with quantized weights", () => {
  const dir = findModel("stories260k");
  let cacheDir: string;
  let quality: Record<string, FormatQuality>;
  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), "sy-quant-stories-"));
    quality = Object.fromEntries((await quantizedQuality(dir, cacheDir, ["f32", "int8", "int4"], 48)).map((q) => [q.format, q]));
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));

  it("int8's greedy answer equals F32's; its perplexity is within 2% of F32's", () => {
    expect(quality.int8.greedy).toEqual(quality.f32.greedy);
    expect(quality.f32.greedy.length).toBe(48);
    expect(Math.abs(quality.int8.perplexity / quality.f32.perplexity - 1)).toBeLessThan(0.02);
  });

  it("int4 stays within 20% of F32's perplexity (its greedy answer drifts after 23 tokens: 16 levels per block of 32)", () => {
    expect(quality.f32.perplexity).toBeGreaterThan(1);
    expect(quality.int4.perplexity / quality.f32.perplexity).toBeLessThan(1.2);
    expect(quality.int4.perplexity).not.toBe(quality.f32.perplexity);
  });

  it("every format's logits match the reference forward on its dequantized weights (within 8% of the largest logit: the ops' activation rounding)", () => {
    expect(quality.f32.relativeLogitError).toBeLessThan(1e-5);
    for (const format of ["int8", "int4"]) expect(quality[format].relativeLogitError, format).toBeLessThan(0.08);
  });

  it("an engine created with weights int8 serves from the cached int8 graphs and gives their greedy ids", async () => {
    const engine = await createEngine({ modelDir: dir, cacheDir, weights: "int8" });
    try {
      const params = { maxTokens: 24, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, seed: 1, stop: [] };
      const ids: number[] = [];
      for await (const e of engine.generate({ promptTokens: engine.tokenize(GREEDY_PROMPT), params })) if (e.type === "text") ids.push(e.tokenId);
      expect(ids).toEqual(quality.int8.greedy.slice(0, 24));
    } finally {
      await engine.close();
    }
  });

  it("each format is its own compile cache entry", async () => {
    const keys = ["f32", "int8", "int4"].map((f) => quality[f].compileKey);
    expect(new Set(keys).size).toBe(3);
    const entries = await readdir(cacheDir);
    for (const key of keys) expect(entries).toContain(key.split("/")[0]); // one model folder per format (services/model/compile-cache.ts)
    const config = await loadDecoderConfig(dir);
    expect(compileKey(config, "h", { fused: true })).toBe(compileKey(config, "h", { fused: true, weights: "f32" }));
    expect(compileKey(config, "h", { fused: true, weights: "int8" })).not.toBe(compileKey(config, "h", { fused: true, weights: "int4" }));
  });
});
