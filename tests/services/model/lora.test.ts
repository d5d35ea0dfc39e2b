import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { LORA_TARGETS } from "../../../services/model/lora-layout.ts";
import { buildDecoderGraph, type DecoderOptions } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { buildLoraTensors, NO_ADAPTER } from "../../../services/inference/lora-feeds.ts";
import { argmax, expectClose, expectDifferent, row } from "../../helpers/compare.ts";
import { mergedWeights, randomAdapter, randomWeights, TINY_VARIANTS } from "../../helpers/tiny-model.ts";

const TOLERANCE = 1e-4;
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));


describe.each([
  ["llama GQA", TINY_VARIANTS["llama untied GQA, odd sizes"]],
  ["qwen2 biases", TINY_VARIANTS["qwen2 with q/k/v biases and explicit head_dim"]],
])("LoRA branch of the compiled decoder (%s)", (_, config) => {
  const weights = randomWeights(config, 11);
  const adapters = [
    randomAdapter(config, "all", 4, LORA_TARGETS, 1),
    randomAdapter(config, "attn-only", 2, ["q_proj", "v_proj", "o_proj"], 2),
    randomAdapter(config, "mlp-only", 3, ["gate_proj", "down_proj"], 3),
  ];
  const references = [new ReferenceDecoder(config, (n) => weights.getF32(n)), ...adapters.map((a) => {
    const merged = mergedWeights(config, weights, a);
    return new ReferenceDecoder(config, (n) => merged.getF32(n));
  })];

  const session = async (options: DecoderOptions) => {
    const dir = await mkdtemp(join(tmpdir(), "sy-lora-"));
    dirs.push(dir);
    const files = await writeOnnx(buildDecoderGraph(config, weights, { ...options, lora: true }), dir);
    return ort.InferenceSession.create(files.modelPath);
  };
  const variants: [string, () => Promise<DecoderRunner>][] = [
    ["portable graph", async () => new DecoderRunner(await session({}), config)],
    [
      "engine graphs (fused, new keys only, decode-only steps)",
      async () => new DecoderRunner(await session({ fused: true, kvOutput: "new" }), config, await session({ fused: true, decodeOnly: true })),
    ],
  ];

  it.each(variants)("matches the reference on merged weights W + s·B·A for a batch mixing adapters and no adapter: %s", async (_, makeRunner) => {
    const runner = await makeRunner();
    const tensors = buildLoraTensors(config, adapters);
    const slots = [0, NO_ADAPTER, 1, 2, 0];
    const prompts = [[1, 5, 9], [1, 2, 3, 4, 5], [1, 44], [1, 30, 31, 32], [1, 8, 7, 6, 5, 4]];
    const refCaches = slots.map((s) => references[s + 1].newCache());
    let tokens = prompts;
    let positions = prompts.map(() => 0);
    const cache = BatchCache.empty(config, prompts.length);
    for (let step = 0; step < 4; step++) {
      const got = await runner.step({ cache, tokens, startPositions: positions, lora: { slots, tensors } });
      tokens = tokens.map((input, r) => {
        const want = references[slots[r] + 1].forward(refCaches[r], input).at(-1)!;
        expectClose(row(got.logits, r, config.vocabSize, prompts.length), want, TOLERANCE, `row ${r} step ${step}`);
        return [argmax(want)];
      });
      positions = positions.map((p, r) => p + (step === 0 ? prompts[r].length : 1));
    }
    // The adapters change the output, so the comparison above is not vacuous.
    const plain = references[0].forward(references[0].newCache(), prompts[0]).at(-1)!;
    const adapted = references[1].forward(references[1].newCache(), prompts[0]).at(-1)!;
    expectDifferent(plain, adapted, 1e-2);
  });
});
