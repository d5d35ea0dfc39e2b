import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../../services/model/config.ts";
import { buildDecoderGraph, type DecoderOptions } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { argmax, expectClose, row } from "../../helpers/compare.ts";
import { randomWeights, TINY_VARIANTS, type MemoryWeights } from "../../helpers/tiny-model.ts";

const TOLERANCE = 1e-4;
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

interface Variant {
  general: DecoderOptions;
  /** Options of a decode-only graph used for the one-token steps, if any. */
  decode?: DecoderOptions;
}

async function session(config: DecoderConfig, weights: MemoryWeights, options: DecoderOptions): Promise<ort.InferenceSession> {
  const dir = await mkdtemp(join(tmpdir(), "sy-decoder-"));
  dirs.push(dir);
  const files = await writeOnnx(buildDecoderGraph(config, weights, options), dir);
  return ort.InferenceSession.create(files.modelPath);
}

async function compile(config: DecoderConfig, weights: MemoryWeights, variant: Variant): Promise<DecoderRunner> {
  const decode = variant.decode && (await session(config, weights, variant.decode));
  return new DecoderRunner(await session(config, weights, variant.general), config, decode);
}

const VARIANTS: Variant[] = [
  { general: {} },
  { general: { fused: true } },
  { general: { kvOutput: "new" }, decode: { decodeOnly: true } },
  { general: { fused: true, kvOutput: "new" }, decode: { fused: true, decodeOnly: true } },
];


describe.each(Object.entries(TINY_VARIANTS))("compiled decoder vs reference: %s", (_, config) => {
  const weights = randomWeights(config, 7);
  const reference = new ReferenceDecoder(config, (n) => weights.getF32(n));
  const prompt = [1, 5, 17, 42, 9, 3, 50];

  for (const variant of VARIANTS) {
    it(`matches for prefill (every position) and each decode step ${JSON.stringify(variant)}`, async () => {
      const runner = await compile(config, weights, variant);
      const refCache = reference.newCache();
      const expected = reference.forward(refCache, prompt);
      const cache = BatchCache.empty(config, 1);
      const out = await runner.step({ cache, tokens: [prompt], startPositions: [0], allLogits: true });
      const V = config.vocabSize;
      prompt.forEach((_, t) => expectClose(row(out.logits, t, V, prompt.length), expected[t], TOLERANCE, `position ${t}`));

      let token = argmax(expected[prompt.length - 1]);
      for (let step = 0; step < 6; step++) {
        const [want] = reference.forward(refCache, [token]);
        const got = await runner.step({ cache, tokens: [[token]], startPositions: [prompt.length + step] });
        expectClose(got.logits, want, TOLERANCE, `decode step ${step}`);
        token = argmax(want);
      }
    });
  }

  it.each([VARIANTS[0], VARIANTS[3]])("gives each sequence of a left-padded batch the logits it gets alone %j", async (variant) => {
    const runner = await compile(config, weights, variant);
    const prompts = [[1, 4, 9], prompt, [1, 33]];
    const refs = prompts.map(() => reference.newCache());
    let tokens = prompts;
    const cache = BatchCache.empty(config, prompts.length);
    let positions = prompts.map(() => 0);
    for (let step = 0; step < 5; step++) {
      const got = await runner.step({ cache, tokens, startPositions: positions });
      const next = tokens.map((input, r) => {
        const want = reference.forward(refs[r], input).at(-1)!;
        expectClose(row(got.logits, r, config.vocabSize, prompts.length), want, TOLERANCE, `row ${r} step ${step}`);
        return argmax(want);
      });
      positions = positions.map((p, r) => p + tokens[r].length);
      tokens = next.map((t) => [t]);
    }
    // Dropping the middle row and merging a fresh prefill keeps the remaining rows exact.
    const late = BatchCache.empty(config, 1);
    await runner.step({ cache: late, tokens: [[1, 7, 8, 2]], startPositions: [0] });
    const lateRef = reference.newCache();
    reference.forward(lateRef, [1, 7, 8, 2]);
    const merged = BatchCache.merge(cache.select([0, 2]), late);
    const rows = [tokens[0], tokens[2], [11]];
    const got = await runner.step({ cache: merged, tokens: rows, startPositions: [positions[0], positions[2], 4] });
    [refs[0], refs[2], lateRef].forEach((ref, r) => {
      const want = reference.forward(ref, rows[r]).at(-1)!;
      expectClose(row(got.logits, r, config.vocabSize, rows.length), want, TOLERANCE, `merged row ${r}`);
    });
  });
});
