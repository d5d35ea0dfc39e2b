/**
 * Quantized base weights (int8, int4) in the engine's graphs against the plain reference forward run on
 * the DEQUANTIZED weights, so what is checked is the graph, not the quantization error.
 *
 * Tolerance: the quantized ops also round their activations to 8 bits on the fly (DynamicQuantizeMatMul:
 * one uint8 step per tensor, range/255; MatMulNBits accuracy_level 4: one int8 step per block of 32,
 * max/127), which the float reference does not. That rounding adds up to half a step per input, about as
 * much as int8's own weight rounding (max/127 per channel), compounded over the layers, the attention and
 * the head of these tiny random models (width 20-24, uniform weights). So the bound is relative:
 * max |Δlogit| ≤ 6% of the largest |logit|; measured 1.4-3.6% (stories260k's real weights: below 1%, see
 * quantized-stories260k.test.ts). For int4 the weight rounding is ten times the activations', so there the
 * graph is also checked to be closer to the dequantized reference than to the float one: it computes with
 * the quantized weights, not the float ones.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../../services/model/config.ts";
import { hasInt8DotProduct } from "../../../services/model/cpu-features.ts";
import { buildDecoderGraph, normalizeDecoderOptions, type DecoderOptions } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { LORA_TARGETS } from "../../../services/model/lora-layout.ts";
import { dequantizedLookup, type WeightFormat } from "../../../services/model/quantize.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { buildLoraTensors, NO_ADAPTER } from "../../../services/inference/lora-feeds.ts";
import { engineVariants } from "../../../services/inference/engine.ts";
import { argmax, maxAbsDiff, row } from "../../helpers/compare.ts";
import { hfShape, MemoryWeights, mergedWeights, randomAdapter, randomWeights, TINY_VARIANTS } from "../../helpers/tiny-model.ts";

const RELATIVE_TOLERANCE = 0.06;
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** The weights a `format` graph computes with, as an untied model (a tied head is quantized apart from the embeddings). */
function dequantizedModel(config: DecoderConfig, weights: MemoryWeights, format: WeightFormat): { config: DecoderConfig; weights: MemoryWeights } {
  const lookup = dequantizedLookup((n) => weights.getF32(n), (n) => hfShape(config, n), format, config.tieWordEmbeddings);
  const names = [...weights.names().filter((n) => n !== "lm_head.weight"), "lm_head.weight"];
  return { config: { ...config, tieWordEmbeddings: false }, weights: new MemoryWeights(new Map(names.map((n) => [n, lookup(n)]))) };
}

async function engineRunner(config: DecoderConfig, weights: MemoryWeights, options: DecoderOptions): Promise<DecoderRunner> {
  const session = async (graph: DecoderOptions) => {
    const dir = await mkdtemp(join(tmpdir(), "sy-quant-"));
    dirs.push(dir);
    return ort.InferenceSession.create((await writeOnnx(buildDecoderGraph(config, weights, { ...options, ...graph }), dir)).modelPath);
  };
  return new DecoderRunner(await session({ fused: true, kvOutput: "new" }), config, await session({ fused: true, decodeOnly: true }));
}

/** max |a - b| over the largest |b|. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  return maxAbsDiff(actual, expected).worst / scale;
}

const CASES = ["llama untied GQA, odd sizes", "llama tied, multi-head (no GQA)", "qwen2 with q/k/v biases and explicit head_dim"] as const;

// int8 stored as int8 (the u8s8 kernel) is exact only with VNNI, and the engine picks it only there (engineVariants).
const INT8_STORAGE: DecoderOptions["int8Weights"][] = hasInt8DotProduct() ? ["uint8", "int8"] : ["uint8"];
const FORMATS = [...INT8_STORAGE.map((int8Weights) => ({ weights: "int8" as const, int8Weights })), { weights: "int4" as const }];

describe.each(CASES.flatMap((name) => FORMATS.map((options) => [name, options] as const)))("%s in %o", (name, options) => {
  const config = TINY_VARIANTS[name];
  const weights = randomWeights(config, 5);
  const format = options.weights;

  it("prefill and decode steps match the reference on the dequantized weights", async () => {
    const runner = await engineRunner(config, weights, options);
    const dequantized = dequantizedModel(config, weights, format);
    const reference = new ReferenceDecoder(dequantized.config, (n) => dequantized.weights.getF32(n));
    const float = new ReferenceDecoder(config, (n) => weights.getF32(n));
    const prompt = [1, 5, 17, 42, 9, 3, 50];
    const [refCache, floatCache] = [reference.newCache(), float.newCache()];
    const expected = reference.forward(refCache, prompt);
    const floats = float.forward(floatCache, prompt);
    const cache = BatchCache.empty(config, 1);
    const out = await runner.step({ cache, tokens: [prompt], startPositions: [0], allLogits: true });
    let worst = 0;
    let worstFloat = 0;
    prompt.forEach((_, t) => {
      const got = row(out.logits, t, config.vocabSize, prompt.length);
      worst = Math.max(worst, relativeError(got, expected[t]));
      worstFloat = Math.max(worstFloat, relativeError(got, floats[t]));
    });
    let token = argmax(expected.at(-1)!);
    for (let step = 0; step < 5; step++) {
      const [want] = reference.forward(refCache, [token]);
      const [wantFloat] = float.forward(floatCache, [token]);
      const got = await runner.step({ cache, tokens: [[token]], startPositions: [prompt.length + step] });
      worst = Math.max(worst, relativeError(got.logits, want));
      worstFloat = Math.max(worstFloat, relativeError(got.logits, wantFloat));
      token = argmax(want);
    }
    expect(worst).toBeLessThan(RELATIVE_TOLERANCE);
    if (format === "int4") expect(worstFloat).toBeGreaterThan(2 * worst);
  });
});

describe("int8 weights stored as int8", () => {
  it("are the engine's choice exactly where the CPU has VNNI, and compute what uint8 storage computes", async () => {
    expect(engineVariants("int8").prefill.int8Weights).toBe(hasInt8DotProduct() ? "int8" : "uint8");
    expect(normalizeDecoderOptions(engineVariants("f32").prefill).int8Weights).toBe("uint8"); // f32 keys do not depend on the CPU
    const config = TINY_VARIANTS["llama untied GQA, odd sizes"];
    const weights = randomWeights(config, 7);
    const prompt = [1, 5, 17, 42, 9];
    const logits = async (int8Weights: DecoderOptions["int8Weights"]) => {
      const runner = await engineRunner(config, weights, { weights: "int8", int8Weights });
      return (await runner.step({ cache: BatchCache.empty(config, 1), tokens: [prompt], startPositions: [0], allLogits: true })).logits;
    };
    for (const storage of INT8_STORAGE.slice(1)) expect(maxAbsDiff(await logits(storage), await logits("uint8")).worst).toBeLessThan(1e-4);
  });
});

describe("LoRA on an int8 base", () => {
  const config = TINY_VARIANTS["llama untied GQA, odd sizes"];
  const weights = randomWeights(config, 11);
  const adapters = [randomAdapter(config, "all", 4, LORA_TARGETS, 1), randomAdapter(config, "attn-only", 2, ["q_proj", "v_proj", "o_proj"], 2)];

  it("a batch mixing adapters and no adapter matches the reference with each adapter on the dequantized weights", async () => {
    const runner = await engineRunner(config, weights, { weights: "int8", lora: true });
    const base = dequantizedModel(config, weights, "int8");
    const references = [base.weights, ...adapters.map((a) => mergedWeights(base.config, base.weights, a))].map((w) => new ReferenceDecoder(base.config, (n) => w.getF32(n)));
    const slots = [0, NO_ADAPTER, 1, 0];
    const prompts = [[1, 5, 9], [1, 2, 3, 4, 5], [1, 44], [1, 8, 7, 6, 5, 4]];
    const refCaches = slots.map((s) => references[s + 1].newCache());
    const tensors = buildLoraTensors(config, adapters);
    const cache = BatchCache.empty(config, prompts.length);
    let tokens = prompts;
    let positions = prompts.map(() => 0);
    let worst = 0;
    for (let step = 0; step < 4; step++) {
      const got = await runner.step({ cache, tokens, startPositions: positions, lora: { slots, tensors } });
      tokens = tokens.map((input, r) => {
        const want = references[slots[r] + 1].forward(refCaches[r], input).at(-1)!;
        worst = Math.max(worst, relativeError(row(got.logits, r, config.vocabSize, prompts.length), want));
        return [argmax(want)];
      });
      positions = positions.map((p, r) => p + (step === 0 ? prompts[r].length : 1));
    }
    expect(worst).toBeLessThan(RELATIVE_TOLERANCE);
    // The adapter changes the output by far more than the tolerance: the comparison is not vacuous.
    const plain = references[0].forward(references[0].newCache(), prompts[0]).at(-1)!;
    const adapted = references[1].forward(references[1].newCache(), prompts[0]).at(-1)!;
    expect(relativeError(adapted, plain)).toBeGreaterThan(5 * RELATIVE_TOLERANCE);
  });
});
