import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import * as ort from "onnxruntime-node";
import { loadTokenizer } from "../../model/tokenizer.ts";
import type { Embedder } from "../types.ts";
import { encodeInBatches, padBatch, sessionOptions, type PaddedBatch } from "./batching.ts";

/** Padding never reaches the result (the mask drops it), so any id works. */
const PAD_ID = 0;

export interface OnnxEncoderOptions {
  batchSize?: number;
  /** Longest token sequence fed to the model; defaults to tokenizer_config's model_max_length, capped at 512. */
  maxTokens?: number;
  intraOpThreads?: number;
}

/**
 * A BERT-family sentence encoder from a folder holding `model.onnx` and `tokenizer.json`: feeds
 * `input_ids`, `attention_mask` (and `token_type_ids` when the model takes it), mean-pools the first
 * output ([batch, seq, hidden]) over real tokens and L2-normalises.
 */
export async function createOnnxEncoder(dir: string, options: OnnxEncoderOptions = {}): Promise<Embedder> {
  const modelPath = join(dir, "model.onnx");
  if (!existsSync(modelPath)) throw new Error(`no model.onnx in embedding model folder ${dir}`);
  const tokenizer = await loadTokenizer(dir);
  const config = readJsonIfPresent(join(dir, "tokenizer_config.json"));
  const maxTokens = options.maxTokens ?? Math.min(512, Number(config.model_max_length) || 512);
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(options.intraOpThreads));
  const output = session.outputNames[0];
  const feeds = (batch: PaddedBatch): Record<string, ort.Tensor> => ({
    input_ids: batch.ids,
    attention_mask: batch.maskInt,
    ...(session.inputNames.includes("token_type_ids") ? { token_type_ids: batch.typeIds } : {}),
  });
  const probe = await session.run(feeds(padBatch([[PAD_ID]], PAD_ID)));
  const dimension = probe[output].dims[2];
  if (probe[output].dims.length !== 3) throw new Error(`${modelPath}: first output must be [batch, seq, hidden], got [${probe[output].dims}]`);
  return {
    id: `onnx:${basename(dir)}:${dimension}`,
    dimension,
    maxTokens,
    countTokens: (text) => tokenizer.encode(text).length,
    async embed(texts) {
      const sequences = texts.map((t) => clip(tokenizer.encode(t), maxTokens));
      return encodeInBatches(sequences, options.batchSize ?? 32, PAD_ID, async (batch) => {
        const hidden = (await session.run(feeds(batch)))[output];
        return meanPoolNormalized(hidden.data as Float32Array, batch.mask, batch.size, batch.length, dimension);
      });
    },
    close: () => session.release(),
  };
}

/** Mean over positions where mask = 1, then L2 normalisation, per row. */
export function meanPoolNormalized(hidden: Float32Array, mask: Float32Array, batch: number, length: number, dim: number): Float32Array[] {
  return Array.from({ length: batch }, (_, b) => {
    const sum = new Float64Array(dim);
    let count = 0;
    for (let t = 0; t < length; t++) {
      if (!mask[b * length + t]) continue;
      count++;
      const base = (b * length + t) * dim;
      for (let d = 0; d < dim; d++) sum[d] += hidden[base + d];
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += (sum[d] / Math.max(count, 1)) ** 2;
    const scale = 1 / (Math.max(count, 1) * Math.max(Math.sqrt(norm), 1e-12));
    return Float32Array.from(sum, (x) => x * scale);
  });
}

/** Keeps the final token (e.g. [SEP]) when cutting a sequence to `max`. */
function clip(ids: number[], max: number): number[] {
  return ids.length <= max ? ids : [...ids.slice(0, max - 1), ids[ids.length - 1]];
}

function readJsonIfPresent(path: string): Record<string, unknown> {
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
}
