import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permuteRotaryRows, quantizeQ4_0, quantizeQ8_0, writeGguf } from "../../bench/gguf.ts";
import { cpuLlama } from "../../bench/llama-cpp.ts";
import { createEngine } from "../../services/inference/engine.ts";
import { halfToFloat } from "../../services/model/safetensors.ts";
import { params } from "../helpers/generate.ts";
import { findModel } from "../helpers/model-path.ts";

/** From ../shared/models/README.md: greedy from BOS alone. */
const KNOWN_PREFIX = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338];
const STEPS = 40;

/** llama.cpp's greedy continuation of `prompt` in the GGUF file at `path`. */
async function llamaCppGreedy(path: string, prompt: number[], steps: number): Promise<{ tokens: number[]; text: string; tokenize: number[] }> {
  const model = await (await cpuLlama()).loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    const tokens: number[] = [];
    for await (const token of context.getSequence().evaluate(prompt as Token[], { temperature: 0 })) {
      tokens.push(token);
      if (tokens.length === steps) break;
    }
    await context.dispose();
    return { tokens, text: model.detokenize(tokens as Token[]), tokenize: model.tokenize("Once upon a time") };
  } finally {
    await model.dispose();
  }
}

describe("GGUF for llama.cpp", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sy-gguf-"));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("quantizes a block as ggml's Q8_0 and Q4_0 reference quantizers do", () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => i - 12); // largest magnitude: 19
    const q8 = quantizeQ8_0(x);
    expect(q8.length).toBe(34);
    const d8 = halfToFloat(q8[0]! | (q8[1]! << 8));
    expect(d8).toBeCloseTo(19 / 127, 3); // stored as f16
    const q8values = new Int8Array(q8.buffer, 2, 32);
    expect(q8values[31]).toBe(127);
    expect(q8values[0]).toBe(-80); // round(-12 · 127 / 19), with the f32 scale
    const q4 = quantizeQ4_0(x);
    expect(q4.length).toBe(18);
    expect(halfToFloat(q4[0]! | (q4[1]! << 8))).toBeCloseTo(19 / -8, 3);
    // Byte j holds value j (low nibble) and value j + 16 (high nibble); 19 maps to 0, -12 to 8 + round(12·8/19) = 13.
    expect(q4[2 + 15]! >> 4).toBe(0);
    expect(q4[2]! & 0x0f).toBe(13);
  });

  it("moves rotate-half rows to interleaved pairs within each head", () => {
    const rows = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]); // two heads of four one-column rows
    expect([...permuteRotaryRows(rows, 8, 1, 2)]).toEqual([0, 2, 1, 3, 10, 12, 11, 13]);
  });

  it("F32 stories260k: llama.cpp's greedy ids equal the engine's, and Q8_0 still tells the story", async () => {
    const modelDir = findModel("stories260k");
    const f32 = await writeGguf(modelDir, join(dir, "stories260k-f32.gguf"), "F32");
    expect(f32.tensors).toBe(2 + 9 * 5); // tied: no output tensor
    const q8 = await writeGguf(modelDir, join(dir, "stories260k-q8_0.gguf"), "Q8_0");
    expect(q8.keptF32).toEqual([0, 1, 2, 3, 4].map((i) => `blk.${i}.ffn_down.weight`)); // rows of 172
    expect(q8.bytes).toBeLessThan(f32.bytes / 2);

    const engine = await createEngine({ modelDir, cacheDir: join(dir, "compiled"), maxBatch: 1 });
    const ours: number[] = [];
    try {
      for await (const e of engine.generate({ promptTokens: [1], params: params({ maxTokens: STEPS }) })) if (e.type === "text") ours.push(e.tokenId);
    } finally {
      await engine.close();
    }
    const theirs = await llamaCppGreedy(f32.path, [1], STEPS);
    expect(ours.slice(0, KNOWN_PREFIX.length)).toEqual(KNOWN_PREFIX);
    expect(theirs.tokens).toEqual(ours);
    expect(theirs.tokenize).toEqual([403, 407, 261, 378]); // the vocabulary's scores reproduce the BPE merges

    const quantized = await llamaCppGreedy(q8.path, [1], 20);
    expect(quantized.text.startsWith("Once upon a time")).toBe(true);
  });
});
