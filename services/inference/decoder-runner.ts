/**
 * Runs one forward step of the compiled decoder on a batch: builds the feeds (left-padding rows
 * whose new tokens differ in count), runs the session, writes the new keys/values into the
 * batch's cache and returns the logits. Works with both graph variants: `kvOutput: "new"`
 * (the engine's, no cache copy; every layer's new keys/values in one `new_kv` output) and
 * `"present"` (the portable interface; the new columns are read back from the present tensors).
 *
 * Decode steps (one token per row) are the hot path of a small model, where the step's JavaScript
 * and the feeds' count cost as much as the graph: their feeds are kept between steps while the
 * cache's layout stands (services/inference/kv-cache.ts `layout`), so a step writes the new ids and
 * positions and the mask's newly appended columns in place instead of building every array and
 * tensor again. Feeds are only read during `session.run`, so a step never sees another's.
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

/** What a session's graph takes and returns, read once from its input and output names. */
interface SessionShape {
  logitsIndex: boolean;
  virtual: boolean;
  packedKv: boolean;
}

/** A decode step's feeds, valid while their cache keeps `layout`; `width` is how far `mask` mirrors the cache's. */
interface DecodeFeeds {
  session: ort.InferenceSession;
  layout: number;
  width: number;
  ids: BigInt64Array;
  positions: BigInt64Array;
  /** [rows, capacity + 1]: the cache's mask, then the new token's column (always 1). */
  mask: BigInt64Array;
  feeds: Record<string, ort.Tensor>;
}

export class DecoderRunner {
  private readonly shapes = new Map<ort.InferenceSession, SessionShape>();
  /** Kept per cache, and only as long as the cache lives: a batch's dropped cache takes its feeds with it. */
  private readonly decodeFeeds = new WeakMap<BatchCache, DecodeFeeds>();
  private ones = new BigInt64Array(0);

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
    const rows = tokens.length;
    if (rows !== cache.rows) throw new Error(`step has ${rows} rows but the cache has ${cache.rows}`);
    let seq = 1;
    for (const row of tokens) if (row.length > seq) seq = row.length;
    cache.reserve(seq);
    const picked = input.allLogits ? seq : 1;
    // Virtual tokens are embedded only by the general graph (the decode-only one has no such input).
    const decoding = seq === 1 && picked === 1 && !input.virtual;
    const session = decoding ? (this.decodeSession ?? this.session) : this.session;
    const shape = this.shapeOf(session);
    if (input.virtual && !shape.virtual) throw new Error("this decoder graph has no virtual_embeddings input (compile it with virtualTokens: true)");
    let feeds: Record<string, ort.Tensor>;
    let newMask: BigInt64Array;
    if (decoding && !shape.virtual) {
      feeds = this.decodeStepFeeds(session, shape, cache, tokens, input.startPositions);
      newMask = this.onesOf(rows);
    } else {
      ({ feeds, newMask } = this.generalFeeds(shape, input, seq, picked));
    }
    if (input.lora) feeds = { ...feeds, ...input.lora.tensors, ...segmentIndices(input.lora.slots, seq, loraSlotCount(input.lora)) };
    const out = await session.run(feeds);
    this.appendNew(cache, out, shape, newMask, seq);
    return { logits: out.logits.data as Float32Array, picked };
  }

  private shapeOf(session: ort.InferenceSession): SessionShape {
    let shape = this.shapes.get(session);
    if (!shape) {
      shape = {
        logitsIndex: session.inputNames.includes("logits_index"),
        virtual: session.inputNames.includes(VIRTUAL_EMBEDDINGS_INPUT),
        packedKv: session.outputNames.includes("new_kv"),
      };
      this.shapes.set(session, shape);
    }
    return shape;
  }

  /** The feeds of any step: left-padded ids, positions and mask over past + new columns. */
  private generalFeeds(shape: SessionShape, input: StepInput, seq: number, picked: number): { feeds: Record<string, ort.Tensor>; newMask: BigInt64Array } {
    const { cache, tokens } = input;
    const rows = tokens.length;
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
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", ids, [rows, seq]),
      position_ids: new ort.Tensor("int64", positions, [rows, seq]),
      attention_mask: new ort.Tensor("int64", mask, [rows, total]),
      ...this.pastFeeds(cache),
    };
    if (shape.logitsIndex) {
      const index = new BigInt64Array(rows * picked);
      for (let r = 0; r < rows; r++) for (let k = 0; k < picked; k++) index[r * picked + k] = BigInt(seq - picked + k);
      feeds.logits_index = new ort.Tensor("int64", index, [rows, picked]);
    }
    if (shape.virtual) feeds[VIRTUAL_EMBEDDINGS_INPUT] = this.virtualFeed(input.virtual);
    return { feeds, newMask };
  }

  /** A decode step's feeds: kept from the last step while the cache's layout holds, rebuilt otherwise. */
  private decodeStepFeeds(session: ort.InferenceSession, shape: SessionShape, cache: BatchCache, tokens: number[][], startPositions: number[]): Record<string, ort.Tensor> {
    let kept = this.decodeFeeds.get(cache);
    const rows = cache.rows;
    const capacity = cache.capacity;
    const total = capacity + 1;
    if (kept?.session === session && kept.layout === cache.layout) {
      // Only `append` ran since: copy the columns it added.
      const source = cache.mask;
      for (let r = 0; r < rows; r++) for (let c = kept.width; c < cache.width; c++) kept.mask[r * total + c] = source[r * capacity + c];
    } else {
      const mask = new BigInt64Array(rows * total);
      for (let r = 0; r < rows; r++) {
        mask.set(cache.mask.subarray(r * capacity, (r + 1) * capacity), r * total);
        mask[r * total + capacity] = 1n;
      }
      const ids = new BigInt64Array(rows);
      const positions = new BigInt64Array(rows);
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor("int64", ids, [rows, 1]),
        position_ids: new ort.Tensor("int64", positions, [rows, 1]),
        attention_mask: new ort.Tensor("int64", mask, [rows, total]),
        ...this.pastFeeds(cache),
      };
      if (shape.logitsIndex) feeds.logits_index = new ort.Tensor("int64", new BigInt64Array(rows), [rows, 1]);
      kept = { session, layout: cache.layout, width: 0, ids, positions, mask, feeds };
      this.decodeFeeds.set(cache, kept);
    }
    kept.width = cache.width;
    for (let r = 0; r < rows; r++) {
      kept.ids[r] = BigInt(tokens[r][0]);
      kept.positions[r] = BigInt(startPositions[r]);
    }
    return kept.feeds;
  }

  /** The cache's keys and values as the graph's past inputs (views, no copy). */
  private pastFeeds(cache: BatchCache): Record<string, ort.Tensor> {
    const { numLayers, numKvHeads, headDim } = this.config;
    const dims = [cache.rows, numKvHeads, cache.capacity, headDim];
    const feeds: Record<string, ort.Tensor> = {};
    for (let l = 0; l < numLayers; l++) {
      feeds[`past_key.${l}`] = new ort.Tensor("float32", cache.keys(l), dims);
      feeds[`past_value.${l}`] = new ort.Tensor("float32", cache.values(l), dims);
    }
    return feeds;
  }

  /** Writes the step's new keys/values into the cache, from `new_kv` (or the present tensors of the portable graph). */
  private appendNew(cache: BatchCache, out: ort.InferenceSession.OnnxValueMapType, shape: SessionShape, newMask: BigInt64Array, seq: number): void {
    const { numLayers, numKvHeads, headDim } = this.config;
    const rows = cache.rows;
    const capacity = cache.capacity;
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    if (shape.packedKv) {
      const packed = out.new_kv.data as Float32Array;
      const block = rows * numKvHeads * seq * headDim;
      for (let l = 0; l < numLayers; l++) {
        keys.push(packed.subarray(2 * l * block, (2 * l + 1) * block));
        values.push(packed.subarray((2 * l + 1) * block, (2 * l + 2) * block));
      }
    } else {
      for (let l = 0; l < numLayers; l++) {
        keys.push(newColumns(out[`present_key.${l}`].data as Float32Array, rows * numKvHeads, capacity, seq, headDim));
        values.push(newColumns(out[`present_value.${l}`].data as Float32Array, rows * numKvHeads, capacity, seq, headDim));
      }
    }
    cache.append(newMask, seq, keys, values);
  }

  private onesOf(rows: number): BigInt64Array {
    if (this.ones.length < rows) this.ones = new BigInt64Array(rows).fill(1n);
    return this.ones.subarray(0, rows);
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
