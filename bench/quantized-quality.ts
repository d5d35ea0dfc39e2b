/**
 * The quality of quantized base weights (SWITCHYARD_WEIGHTS) on a real model: per format, the perplexity
 * of a fixed text, the largest logits error against the reference forward on the dequantized weights
 * (services/model/quantize.ts dequantizedLookup), and greedy ids from a fixed prompt, all through the
 * engine's two graphs (prefill, decode-only). The engine bench prints it; the quantized-stories260k test
 * asserts on it.
 */
import * as ort from "onnxruntime-node";
import { DecoderRunner } from "../services/inference/decoder-runner.ts";
import { ENGINE_GRAPHS } from "../services/inference/engine.ts";
import { BatchCache } from "../services/inference/kv-cache.ts";
import { compileDecoder } from "../services/model/compile-cache.ts";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { dequantizedLookup, type WeightFormat } from "../services/model/quantize.ts";
import { ReferenceDecoder } from "../services/model/reference.ts";
import { openWeights, type WeightStore } from "../services/model/safetensors.ts";
import { loadTokenizer } from "../services/model/tokenizer.ts";

/** The text whose perplexity is measured (TinyStories-like, as the model was trained on). */
export const QUALITY_TEXT =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. One day, she saw a big red ball in the park. " +
  "She ran to the ball and kicked it. The ball went up high and fell into the pond. Lily was sad. Her mom came and said, \"Don't worry, Lily. We can get it back.\"";
export const GREEDY_PROMPT = "Once upon a time";

export interface FormatQuality {
  format: WeightFormat;
  /** exp(mean negative log-likelihood) of QUALITY_TEXT's tokens after the first. */
  perplexity: number;
  /** Largest |logit - reference logit| over the text's positions, the reference on the dequantized weights. */
  maxLogitError: number;
  /** The same over the largest |reference logit|. */
  relativeLogitError: number;
  /** Greedy ids after GREEDY_PROMPT. */
  greedy: number[];
  /** The compile cache key of the format's prefill graph. */
  compileKey: string;
}

export async function quantizedQuality(modelDir: string, cacheDir: string, formats: readonly WeightFormat[], greedyTokens = 60): Promise<FormatQuality[]> {
  const [config, tokenizer, weights] = await Promise.all([loadDecoderConfig(modelDir), loadTokenizer(modelDir), openWeights(modelDir)]);
  try {
    const text = tokenizer.encode(QUALITY_TEXT, { addSpecialTokens: true });
    const prompt = tokenizer.encode(GREEDY_PROMPT, { addSpecialTokens: true });
    const out: FormatQuality[] = [];
    for (const format of formats) {
      const prefill = await compileDecoder({ config, weights, cacheDir, options: { ...ENGINE_GRAPHS.prefill, weights: format } });
      const decode = await compileDecoder({ config, weights, cacheDir, options: { ...ENGINE_GRAPHS.decode, weights: format } });
      const [prefillSession, decodeSession] = await Promise.all([ort.InferenceSession.create(prefill.modelPath), ort.InferenceSession.create(decode.modelPath)]);
      try {
        const runner = new DecoderRunner(prefillSession, config, decodeSession);
        const logits = await allLogits(runner, config, text);
        const reference = referenceLogits(config, weights, format, text);
        out.push({ format, perplexity: perplexity(logits, text, config.vocabSize), ...logitError(logits, reference), greedy: await greedy(runner, config, prompt, greedyTokens), compileKey: prefill.key });
      } finally {
        await Promise.all([prefillSession.release(), decodeSession.release()]);
      }
    }
    return out;
  } finally {
    weights.close();
  }
}

async function allLogits(runner: DecoderRunner, config: DecoderConfig, tokens: number[]): Promise<Float32Array> {
  const out = await runner.step({ cache: BatchCache.empty(config, 1), tokens: [tokens], startPositions: [0], allLogits: true });
  return out.logits;
}

function referenceLogits(config: DecoderConfig, weights: WeightStore, format: WeightFormat, tokens: number[]): Float32Array[] {
  const lookup = dequantizedLookup((n) => weights.getF32(n), (n) => weights.info(n).shape, format, config.tieWordEmbeddings);
  const reference = new ReferenceDecoder({ ...config, tieWordEmbeddings: false }, lookup);
  return reference.forward(reference.newCache(), tokens);
}

function perplexity(logits: Float32Array, tokens: number[], vocab: number): number {
  let nll = 0;
  for (let t = 0; t + 1 < tokens.length; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
    const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
    nll += logSum - row[tokens[t + 1]!]!;
  }
  return Math.exp(nll / (tokens.length - 1));
}

function logitError(logits: Float32Array, reference: Float32Array[]): { maxLogitError: number; relativeLogitError: number } {
  const vocab = reference[0]!.length;
  if (logits.length !== reference.length * vocab) throw new Error(`logits: ${logits.length} values for ${reference.length} positions`);
  let worst = 0;
  let scale = 0;
  reference.forEach((want, t) => {
    for (let i = 0; i < vocab; i++) {
      worst = Math.max(worst, Math.abs(logits[t * vocab + i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
  });
  return { maxLogitError: worst, relativeLogitError: worst / scale };
}

async function greedy(runner: DecoderRunner, config: DecoderConfig, prompt: number[], steps: number): Promise<number[]> {
  const cache = BatchCache.empty(config, 1);
  let out = await runner.step({ cache, tokens: [prompt], startPositions: [0] });
  const ids: number[] = [];
  for (let i = 0; i < steps; i++) {
    ids.push(argmax(out.logits));
    out = await runner.step({ cache, tokens: [[ids.at(-1)!]], startPositions: [prompt.length + i] });
  }
  return ids;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
