import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { compileDecoder } from "../../../services/model/compile-cache.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { openWeights } from "../../../services/model/safetensors.ts";
import { loadTokenizer } from "../../../services/model/tokenizer.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { argmax, expectClose } from "../../helpers/compare.ts";
import { findModel } from "../../helpers/model-path.ts";

const KNOWN_ANSWER =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";
const KNOWN_PREFIX = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338];
const STEPS = 120;


describe("stories260k", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("greedy decoding from BOS gives the known answer and follows the reference for 120 tokens", async () => {
    const dir = findModel("stories260k");
    const config = await loadDecoderConfig(dir);
    const weights = await openWeights(dir);
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-compiled-"));
    dirs.push(cacheDir);
    // The engine's graphs: a general one (prefill) and a decode-only one.
    const compiled = await compileDecoder({ config, weights, cacheDir, options: { fused: true, kvOutput: "new" } });
    expect(compiled.cached).toBe(false);
    const again = await compileDecoder({ config, weights, cacheDir, options: { fused: true, kvOutput: "new" } });
    expect(again).toMatchObject({ cached: true, modelPath: compiled.modelPath });
    const decode = await compileDecoder({ config, weights, cacheDir, options: { fused: true, decodeOnly: true } });
    expect(decode.modelPath).not.toBe(compiled.modelPath);

    const runner = new DecoderRunner(
      await ort.InferenceSession.create(compiled.modelPath),
      config,
      await ort.InferenceSession.create(decode.modelPath),
    );
    const reference = new ReferenceDecoder(config, (n) => weights.getF32(n));
    const refCache = reference.newCache();
    const cache = BatchCache.empty(config, 1);
    const tokens = [config.bosTokenId!];
    let worst = 0;
    for (let step = 0; step < STEPS; step++) {
      const token = tokens.at(-1)!;
      const out = await runner.step({ cache, tokens: [[token]], startPositions: [step] });
      const [want] = reference.forward(refCache, [token]);
      worst = Math.max(worst, expectClose(out.logits, want, 1e-4, `step ${step}`));
      expect(argmax(out.logits)).toBe(argmax(want));
      tokens.push(argmax(out.logits));
    }
    expect(worst).toBeLessThan(1e-4);
    expect(tokens.slice(0, KNOWN_PREFIX.length)).toEqual(KNOWN_PREFIX);
    const tokenizer = await loadTokenizer(dir);
    expect(tokenizer.decode(tokens, { skipSpecialTokens: true }).startsWith(KNOWN_ANSWER)).toBe(true);
    weights.close();
  });
});
