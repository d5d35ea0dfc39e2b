/**
 * Runs one forward step of the compiled decoder on a batch: builds the feeds (left-padding rows
 * whose new tokens differ in count), runs the session, writes the new keys/values into the
 * batch's cache and returns the logits. Works with both graph variants: `kvOutput: "new"`
 * (the engine's, no cache copy) and `"present"` (the portable interface; the new columns are
 * read back from the present tensors).
 */
import * as ort from "onnxruntime-node";
import type { DecoderConfig } from "../model/config.ts";
import type { BatchCache } from "./kv-cache.ts";
import { segmentIndices, type LoraFeeds } from "./lora-feeds.ts";
import { VIRTUAL_EMBEDDINGS_INPUT } from "../model/prompt-tuning.ts";

export interface StepInput {
  /** The batch's cache; the step appends to it. */
  cache: BatchCache;
  /** New tokens per row (at least one each). */
  tokens: number[][];
  /** Position of each row's first new token. */
  startPositions: number[];
  /** Return logits for every new position instead of only the last one. */
  allLogits?: boolean;
  lora?: LoraFeeds;
  /** The embeddings [E, hidden] of the virtual tokens (ids >= vocab) in `tokens` (prompt tuning). */
  virtual?: Float32Array;
}

export interface StepOutput {
  /** [rows * picked * vocab]; with `allLogits`, position t of row r is at (r * picked + t) * vocab, left-padded. */
  logits: Float32Array;
  /** Number of positions per row in `logits` (1, or the padded step length). */
  picked: number;
}

export class DecoderRunner {
  /**
   * @param session a general graph (any number of new tokens)
   * @param decodeSession optionally a `decodeOnly` graph, used for steps of one token per row
   */
  constructor(
    readonly session: ort.InferenceSession,
    readonly config: DecoderConfig,
    readonly decodeSession?: ort.InferenceSession,
  ) {}

  async step(input: StepInput): Promise<StepOutput> {
    const { cache, tokens } = input;
    const { numLayers, numKvHeads, headDim } = this.config;
    const rows = tokens.length;
    if (rows !== cache.rows) throw new Error(`step has ${rows} rows but the cache has ${cache.rows}`);
    const seq = Math.max(...tokens.map((t) => t.length));
    cache.reserve(seq);
    const capacity = cache.capacity;
    const ids = new BigInt64Array(rows * seq);
    const positions = new BigInt64Array(rows * seq);
    const newMask = new BigInt64Array(rows * seq);
    tokens.forEach((row, r) => {
      const pad = seq - row.length;
      for (let t = 0; t < row.length; t++) {
        ids[r * seq + pad + t] = BigInt(row[t]);
        positions[r * seq + pad + t] = BigInt(input.startPositions[r] + t);
        newMask[r * seq + pad + t] = 1n;
      }
    });
    const total = capacity + seq;
    const mask = new BigInt64Array(rows * total);
    for (let r = 0; r < rows; r++) {
      mask.set(cache.mask.subarray(r * capacity, (r + 1) * capacity), r * total);
      mask.set(newMask.subarray(r * seq, (r + 1) * seq), r * total + capacity);
    }
    const picked = input.allLogits ? seq : 1;
    const index = new BigInt64Array(rows * picked);
    for (let r = 0; r < rows; r++) for (let k = 0; k < picked; k++) index[r * picked + k] = BigInt(seq - picked + k);

    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", ids, [rows, seq]),
      position_ids: new ort.Tensor("int64", positions, [rows, seq]),
      attention_mask: new ort.Tensor("int64", mask, [rows, total]),
      logits_index: new ort.Tensor("int64", index, [rows, picked]),
    };
    const pastDims = [rows, numKvHeads, capacity, headDim];
    for (let l = 0; l < numLayers; l++) {
      feeds[`past_key.${l}`] = new ort.Tensor("float32", cache.keys(l), pastDims);
      feeds[`past_value.${l}`] = new ort.Tensor("float32", cache.values(l), pastDims);
    }
    // Virtual tokens are embedded only by the general graph (the decode-only one has no such input).
    const session = seq === 1 && picked === 1 && !input.virtual ? (this.decodeSession ?? this.session) : this.session;
    if (session.inputNames.includes(VIRTUAL_EMBEDDINGS_INPUT)) feeds[VIRTUAL_EMBEDDINGS_INPUT] = this.virtualFeed(input.virtual);
    else if (input.virtual) throw new Error("this decoder graph has no virtual_embeddings input (compile it with virtualTokens: true)");
    if (input.lora) Object.assign(feeds, input.lora.tensors, segmentIndices(input.lora.slots, seq, loraSlotCount(input.lora)));
    const out = await session.run(feeds);
    const added = (kind: "key" | "value") =>
      Array.from({ length: numLayers }, (_, l) => {
        const fresh = out[`new_${kind}.${l}`];
        if (fresh) return fresh.data as Float32Array;
        return newColumns(out[`present_${kind}.${l}`].data as Float32Array, rows * numKvHeads, capacity, seq, headDim);
      });
    cache.append(newMask, seq, added("key"), added("value"));
    return { logits: out.logits.data as Float32Array, picked };
  }

  /** The step's virtual embeddings, or one unused zero row (the input is always there). */
  private virtualFeed(virtual: Float32Array | undefined): ort.Tensor {
    const hidden = this.config.hiddenSize;
    const data = virtual ?? new Float32Array(hidden);
    return new ort.Tensor("float32", data, [data.length / hidden, hidden]);
  }

}

const loraSlotCount = (lora: LoraFeeds) => Object.values(lora.tensors)[0]!.dims[0]!;

/** The last `seq` columns of a present tensor [rowsTimesHeads, capacity + seq, headDim]. */
function newColumns(present: Float32Array, rowsTimesHeads: number, capacity: number, seq: number, headDim: number): Float32Array {
  const out = new Float32Array(rowsTimesHeads * seq * headDim);
  for (let rh = 0; rh < rowsTimesHeads; rh++) {
    const from = (rh * (capacity + seq) + capacity) * headDim;
    out.set(present.subarray(from, from + seq * headDim), rh * seq * headDim);
  }
  return out;
}
