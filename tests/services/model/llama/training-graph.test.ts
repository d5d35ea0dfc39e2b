import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../../../services/model/config.ts";
import { buildDecoderGraph } from "../../../../services/model/decoder.ts";
import type { Graph } from "../../../../services/model/graph/ir.ts";
import { writeOnnx } from "../../../../services/model/graph/onnx.ts";
import { buildTrainingGraph } from "../../../../services/model/llama/training-graph.ts";
import { LORA_TARGETS } from "../../../../services/model/lora-layout.ts";
import { ReferenceDecoder } from "../../../../services/model/reference.ts";
import { buildLoraTensors, segmentIndices } from "../../../../services/inference/lora-feeds.ts";
import { expectClose, expectDifferent } from "../../../helpers/compare.ts";
import { mergedWeights, randomAdapter, randomWeights, TINY_VARIANTS } from "../../../helpers/tiny-model.ts";

const TOLERANCE = 1e-4;
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function session(graph: Graph): Promise<ort.InferenceSession> {
  const dir = await mkdtemp(join(tmpdir(), "sy-training-"));
  dirs.push(dir);
  return ort.InferenceSession.create((await writeOnnx(graph, dir)).modelPath);
}

const int64 = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

// Two left-padded sequences of 6 columns.
const TOKENS = [
  [1, 5, 17, 42, 9, 3],
  [0, 0, 1, 33, 7, 2],
];
const MASK = [
  [1, 1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1, 1],
];
const POSITIONS = [
  [0, 1, 2, 3, 4, 5],
  [0, 0, 0, 1, 2, 3],
];
const T = TOKENS[0].length;

describe.each([
  ["llama GQA", TINY_VARIANTS["llama untied GQA, odd sizes"]],
  ["llama tied", TINY_VARIANTS["llama tied, multi-head (no GQA)"]],
  ["qwen2 biases", TINY_VARIANTS["qwen2 with q/k/v biases and explicit head_dim"]],
])("training graph (%s)", (_, config: DecoderConfig) => {
  const weights = randomWeights(config, 11);
  const adapter = randomAdapter(config, "attn-and-down", 4, ["q_proj", "v_proj", "o_proj", "down_proj"], 3);
  const stacked = buildLoraTensors(config, [adapter]); // [1, in, rank] / [1, rank, out]

  it("uses standard ONNX ops only and has one A/B input pair per target and layer", () => {
    const graph = buildTrainingGraph(config, weights);
    expect(graph.nodes.filter((n) => n.domain !== "" || n.op === "SimplifiedLayerNormalization")).toEqual([]);
    expect(graph.inputs.filter((v) => v.name.startsWith("lora.")).length).toBe(2 * LORA_TARGETS.length * config.numLayers);
  });

  it("gives every position the logits of the serving graph (portable, no cache) and of the reference on merged weights", async () => {
    const training = await session(buildTrainingGraph(config, weights));
    const lora = Object.fromEntries(Object.entries(stacked).map(([name, t]) => [name, new ort.Tensor("float32", t.data as Float32Array, t.dims.slice(1))]));
    const trained = (await training.run({ input_ids: int64(TOKENS), position_ids: int64(POSITIONS), attention_mask: int64(MASK), ...lora })).logits;
    expect(trained.dims).toEqual([2, T, config.vocabSize]);

    const serving = await session(buildDecoderGraph(config, weights, { lora: true }));
    const empty = new ort.Tensor("float32", new Float32Array(0), [2, config.numKvHeads, 0, config.headDim]);
    const past = Object.fromEntries(Array.from({ length: config.numLayers }, (_, i) => [[`past_key.${i}`, empty], [`past_value.${i}`, empty]]).flat());
    const served = (
      await serving.run({
        input_ids: int64(TOKENS),
        position_ids: int64(POSITIONS),
        attention_mask: int64(MASK),
        logits_index: int64(TOKENS.map(() => Array.from({ length: T }, (_, t) => t))),
        ...past,
        ...stacked,
        ...segmentIndices([0, 0], T, 1),
      })
    ).logits;

    const V = config.vocabSize;
    const at = (logits: ort.Tensor, r: number, t: number) => (logits.data as Float32Array).subarray((r * T + t) * V, (r * T + t + 1) * V);
    const merged = mergedWeights(config, weights, adapter);
    const reference = new ReferenceDecoder(config, (n) => merged.getF32(n));
    TOKENS.forEach((tokens, r) => {
      const first = MASK[r].indexOf(1);
      const expected = reference.forward(reference.newCache(), tokens.slice(first));
      for (let t = first; t < T; t++) {
        expectClose(at(trained, r, t), at(served, r, t), TOLERANCE, `row ${r} position ${t} vs serving`);
        expectClose(at(trained, r, t), expected[t - first], TOLERANCE, `row ${r} position ${t} vs reference`);
      }
    });
    // The adapter changes the output, so the comparison is not vacuous.
    const base = new ReferenceDecoder(config, (n) => weights.getF32(n));
    expectDifferent(at(trained, 0, T - 1), base.forward(base.newCache(), TOKENS[0]).at(-1)!, 1e-2);
  });
});
