/**
 * Checkpoints written and forwarded outside TypeScript (tests/fixtures/hf-tiny/make.py: numpy,
 * float64, reading its own config.json): our config parser, safetensors reader (F32, F16, BF16,
 * sharded), compiled decoder and reference forward must all give its logits. Covers what the
 * in-memory tiny models cannot: that we read Hugging Face's files the way Hugging Face means them.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { loadDecoderConfig, type DecoderConfig } from "../../../services/model/config.ts";
import { buildDecoderGraph, type DecoderOptions } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { openWeights, type WeightStore } from "../../../services/model/safetensors.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { ENGINE_GRAPHS } from "../../../services/inference/engine.ts";
import { expectClose, expectDifferent, row } from "../../helpers/compare.ts";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/hf-tiny");
const TOLERANCE = 1e-4;
const PREFILL = 5;

interface Expected {
  tokens: number[];
  logits: number[][];
}

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function session(config: DecoderConfig, weights: WeightStore, options: DecoderOptions): Promise<ort.InferenceSession> {
  const dir = await mkdtemp(join(tmpdir(), "sy-hf-fixture-"));
  dirs.push(dir);
  return ort.InferenceSession.create((await writeOnnx(buildDecoderGraph(config, weights, options), dir)).modelPath);
}

/** The engine's graphs: prefill of the first tokens (every position's logits), then one decode step per token. */
async function compiledLogits(config: DecoderConfig, weights: WeightStore, tokens: number[]): Promise<Float32Array[]> {
  const runner = new DecoderRunner(await session(config, weights, ENGINE_GRAPHS.prefill), config, await session(config, weights, ENGINE_GRAPHS.decode));
  const cache = BatchCache.empty(config, 1);
  const prefill = await runner.step({ cache, tokens: [tokens.slice(0, PREFILL)], startPositions: [0], allLogits: true });
  const out = Array.from({ length: PREFILL }, (_, t) => row(prefill.logits, t, config.vocabSize, PREFILL).slice());
  for (let t = PREFILL; t < tokens.length; t++) {
    const step = await runner.step({ cache, tokens: [[tokens[t]!]], startPositions: [t] });
    out.push(row(step.logits, 0, config.vocabSize, 1).slice());
  }
  return out;
}

const FEATURES: Record<string, { check(config: DecoderConfig): void; without: Partial<DecoderConfig> }> = {
  "llama-head-dim": {
    check: (c) => expect(c).toMatchObject({ architecture: "llama", headDim: 8, numHeads: 4, hiddenSize: 24, tieWordEmbeddings: false, attentionBias: false }),
    without: { ropeTheta: 500 }, // a control that the rope is checked at all
  },
  "qwen2-bias-tied": {
    check: (c) => expect(c).toMatchObject({ architecture: "qwen2", headDim: 6, hiddenSize: 20, tieWordEmbeddings: true, attentionBias: true, ropeTheta: 1e6 }),
    without: { attentionBias: false },
  },
  "llama3-rope-scaling": {
    check: (c) => expect(c).toMatchObject({ ropeScaling: { type: "llama3", factor: 8 }, numKvHeads: 1, eosTokenIds: [2, 3] }),
    without: { ropeScaling: undefined },
  },
};

describe.each(Object.keys(FEATURES))("Hugging Face checkpoint written by numpy: %s", (name) => {
  const dir = join(FIXTURES, name);
  const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;

  it("the plain reference forward and the compiled engine graphs give numpy's logits at every position", async () => {
    const config = await loadDecoderConfig(dir);
    FEATURES[name]!.check(config);
    const weights = await openWeights(dir);
    try {
      const reference = new ReferenceDecoder(config, (n) => weights.getF32(n));
      const ours = reference.forward(reference.newCache(), expected.tokens);
      expect(ours).toHaveLength(expected.logits.length);
      ours.forEach((logits, t) => expectClose(logits, expected.logits[t]!, TOLERANCE, `reference, position ${t}`));

      const compiled = await compiledLogits(config, weights, expected.tokens);
      expect(compiled).toHaveLength(expected.logits.length);
      compiled.forEach((logits, t) => expectClose(logits, expected.logits[t]!, TOLERANCE, `compiled, position ${t}`));

      // The feature this checkpoint is about changes the logits, so matching them is not vacuous.
      const without = new ReferenceDecoder({ ...config, ...FEATURES[name]!.without }, (n) => weights.getF32(n));
      expectDifferent(without.forward(without.newCache(), expected.tokens).at(-1)!, expected.logits.at(-1)!, 1e-2, "without the feature");
    } finally {
      weights.close();
    }
  });
});
