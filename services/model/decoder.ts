/**
 * Builds the decoder graph of a Llama-family model (llama, mistral, qwen2) in the graph IR.
 *
 * Graph interface (B = batch, T = new tokens, P = past length, S = P + T):
 *   input_ids       int64 [B, T]
 *   position_ids    int64 [B, T]   rotary position of each new token
 *   attention_mask  int64 [B, S]   1 = a real token, 0 = padding, over past + new columns
 *   logits_index    int64 [B, K]   which of the T new positions to return logits for
 *   past_key.{i}    float [B, kvHeads, P, headDim]   (past_value.{i} likewise)
 *   -> logits       float [B, K, vocab]
 *   -> present_key.{i} / present_value.{i}  float [B, kvHeads, S, headDim] = past ++ new
 *
 * With `kvOutput: "new"` the graph returns only the new keys and values instead, every layer's in
 * one tensor (one output costs the caller far less per step than 2·layers of them),
 *   -> new_kv  float [2·layers·B, kvHeads, T, headDim]: block 2i is layer i's keys [B, kvHeads, T, headDim],
 *              block 2i + 1 its values
 * and attends to past and new without concatenating them, so a caller that keeps the cache in
 * preallocated buffers (unused columns masked out) never has the whole cache copied per step.
 * A `decodeOnly` graph has no `logits_index` input (its one position is the one returned).
 *
 * Padding is LEFT padding: every sequence's newest token sits in the last column, so appending a
 * step's keys is a plain concat for the whole batch; masked columns are ignored and a column is
 * visible to a query only if it is not after the query's own column (causal on columns).
 *
 * With `lora: true` the graph also applies per-sequence LoRA adapters held in slots, the way
 * Punica's and S-LoRA's segmented kernels do (SGMV): the rows of the batch that share a slot are
 * gathered into one segment and multiplied by that slot's matrices, so every adapter's weights are
 * read once per step however many sequences use it, and are never copied. Inputs:
 *   lora.{i}.{t}.a  float [slots, in, rank]   A^T per slot, for layer i and target t in q/k/v/o/gate/up/down
 *   lora.{i}.{t}.b  float [slots, rank, out]  (scale·B)^T per slot (scale folded in)
 *   lora_gather     int64 [slots, rows]       each slot's segment: indices into the step's B·T token
 *                                             rows, padded to the fullest segment (padding is unused)
 *   lora_scatter    int64 [B, T]              each token's row in the segments' output; slots·rows = none
 * Each adapted projection adds gather(concat(segments·A·B, a zero row), lora_scatter). The caller
 * derives the indices from a slot per sequence (services/inference/lora-feeds.ts `segmentIndices`).
 *
 * This module is the serving graph: the KV cache, `logits_index`, decode-only and fused-op choices.
 * The model math it is built from lives in ./llama/ (norm, rope, attention, projection, lora, mlp,
 * head: functions over the graph IR, each with a standard-ONNX-ops form), the LoRA layout in
 * ./lora-layout.ts. A training graph (all positions, no cache, one adapter's A/B as inputs,
 * elementary ops) is ./llama/training-graph.ts.
 */
import type { DecoderConfig } from "./config.ts";
import { attr, Graph, type Value } from "./graph/ir.ts";
import { attend, causalBias, groupQueries, headsFirst, lastQueryBias, mergeHeads, rotatedHeads, scaledScores } from "./llama/attention.ts";
import { embeddingTable, embedWithVirtualTokens, outputHead } from "./llama/head.ts";
import { segmentedLora } from "./llama/lora.ts";
import { swiGluMlp } from "./llama/mlp.ts";
import { normWeight, rmsNorm, skipRmsNorm } from "./llama/norm.ts";
import { layerLinear, type Int8Weights, type LayerLinear, type LoraBranch } from "./llama/projection.ts";
import { rotaryEmbedding, type RotaryEmbedding } from "./llama/rope.ts";
import type { DecoderWeights } from "./llama/weights.ts";
import { VIRTUAL_EMBEDDINGS_INPUT } from "./prompt-tuning.ts";
import type { WeightFormat } from "./quantize.ts";

export type { DecoderWeights } from "./llama/weights.ts";

/** Bumped whenever the emitted graph changes, so cached compilations are invalidated. */
export const DECODER_COMPILER_VERSION = "decoder-8";

export interface DecoderOptions {
  /** Adds the LoRA inputs and branches (see above). */
  lora?: boolean;
  /**
   * Use onnxruntime's fused ops (SimplifiedLayerNormalization; com.microsoft
   * SkipSimplifiedLayerNormalization, RotaryEmbedding and FusedMatMul) instead of elementary ONNX
   * ops. Also lets tied embeddings share one initializer with the output head.
   */
  fused?: boolean;
  /** @deprecated Older name of `fused`. */
  fusedNorm?: boolean;
  /** "present" (default): return past ++ new; "new": return only the new keys/values (see above). */
  kvOutput?: "present" | "new";
  /**
   * A graph for decode steps only: exactly one new token per sequence (T = 1) and one logits row.
   * Implies `kvOutput: "new"`; the per-token attention to the new key is elementwise, sparing
   * the many tiny per-head matrix products and the head transposes a general graph needs.
   */
  decodeOnly?: boolean;
  /**
   * Adds the `virtual_embeddings` input [E, hidden] for prompt tuning: an input id at or past the
   * vocabulary size reads row (id - vocab) of it instead of the embedding table
   * (services/model/prompt-tuning.ts). Not with `decodeOnly`: virtual tokens come only in prefill.
   */
  virtualTokens?: boolean;
  /**
   * The base weights' serving format (SWITCHYARD_WEIGHTS): "f32" (default), or the q/k/v/o/gate/up/down
   * projections and the output head quantized at build time, int8 per output channel or int4 in blocks of
   * 32 (services/model/quantize.ts), multiplied by com.microsoft MatMulNBits. LoRA branches stay float.
   */
  weights?: WeightFormat;
  /**
   * How int8 weights are stored for DynamicQuantizeMatMul: "uint8" (default; zero point 128, onnxruntime's
   * u8u8 kernel, exact on every x86 CPU) or "int8" (its u8s8 kernel: about 1.4× faster at batch 1 and 1.8×
   * at 32 rows with VNNI, but saturating without it; see services/model/cpu-features.ts).
   */
  int8Weights?: Int8Weights;
}

/** The canonical form of `DecoderOptions`: what the graph depends on, nothing else. */
export type NormalizedDecoderOptions = Required<Omit<DecoderOptions, "fusedNorm">>;

/**
 * The one normalisation of the options, used by the builder and the compile cache's key (its
 * field order is part of existing cache keys): `fusedNorm` folds into `fused`, `decodeOnly`
 * forces `kvOutput: "new"`.
 */
export function normalizeDecoderOptions(options: DecoderOptions = {}): NormalizedDecoderOptions {
  return {
    lora: Boolean(options.lora),
    fused: Boolean(options.fused ?? options.fusedNorm),
    kvOutput: options.decodeOnly ? "new" : (options.kvOutput ?? "present"),
    decodeOnly: Boolean(options.decodeOnly),
    virtualTokens: Boolean(options.virtualTokens) && !options.decodeOnly,
    weights: options.weights ?? "f32",
    int8Weights: options.weights === "int8" ? (options.int8Weights ?? "uint8") : "uint8",
  };
}

export function buildDecoderGraph(config: DecoderConfig, weights: DecoderWeights, options: DecoderOptions = {}): Graph {
  return new ServingGraphBuilder(config, weights, normalizeDecoderOptions(options)).build();
}

interface PastKv {
  key: Value;
  value: Value;
}

class ServingGraphBuilder {
  private readonly g = new Graph("decoder");
  private lora?: LoraBranch;
  private rope!: RotaryEmbedding;
  /** [P, 1] as a tensor, made on first use (decode-only graphs). */
  private pastAndOneSizes?: Value;

  constructor(
    private readonly c: DecoderConfig,
    private readonly w: DecoderWeights,
    private readonly options: NormalizedDecoderOptions,
  ) {}

  build(): Graph {
    const { g, c, options } = this;
    const seq = options.decodeOnly ? 1 : "seq";
    const inputIds = g.input("input_ids", "int64", ["batch", seq]);
    const positionIds = g.input("position_ids", "int64", ["batch", seq]);
    const mask = g.input("attention_mask", "int64", ["batch", "total"]);
    const logitsIndex = options.decodeOnly ? undefined : g.input("logits_index", "int64", ["batch", "picked"]);
    const past = Array.from({ length: c.numLayers }, (_, i) => ({
      key: g.input(`past_key.${i}`, "float32", ["batch", c.numKvHeads, "past", c.headDim]),
      value: g.input(`past_value.${i}`, "float32", ["batch", c.numKvHeads, "past", c.headDim]),
    }));
    if (options.lora) {
      this.lora = segmentedLora(g, { gather: g.input("lora_gather", "int64", ["lora_slots", "lora_rows"]), scatter: g.input("lora_scatter", "int64", ["batch", seq]) });
    }

    const embedTokens = embeddingTable(g, c, this.w, options.fused && options.weights === "f32");
    let h = options.virtualTokens
      ? embedWithVirtualTokens(g, c, embedTokens, g.input(VIRTUAL_EMBEDDINGS_INPUT, "float32", ["virtual", c.hiddenSize]), inputIds)
      : g.gather(embedTokens, inputIds);
    this.rope = rotaryEmbedding(g, c, positionIds, options.fused);
    const bias = options.decodeOnly ? lastQueryBias(g, mask) : causalBias(g, c, inputIds, mask);

    const splitSizes = options.kvOutput === "new" && !options.decodeOnly ? this.pastAndNewSizes(past[0].key, inputIds) : undefined;
    let normed = rmsNorm(g, h, this.normWeight("model.layers.0.input_layernorm.weight"), c.rmsNormEps, options.fused);
    const newKv: Value[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const linear = layerLinear(g, c, this.w, i, this.lora, options.weights, options.fused, options.int8Weights);
      const attn = this.attention(linear, i, normed, bias, past[i], splitSizes, newKv);
      [normed, h] = this.addAndNorm(h, attn, `model.layers.${i}.post_attention_layernorm.weight`);
      const mlp = swiGluMlp(g, linear, normed, c.intermediateSize);
      const next = i + 1 < c.numLayers ? `model.layers.${i + 1}.input_layernorm.weight` : "model.norm.weight";
      [normed, h] = this.addAndNorm(h, mlp, next);
    }

    if (newKv.length) g.output(g.concat(newKv, 0), "new_kv");
    // A decode step has one position per sequence: its logits are the only ones.
    const picked = logitsIndex ? this.pickPositions(normed, logitsIndex) : normed;
    g.output(outputHead(g, c, this.w, picked, embedTokens, options.fused, options.weights, options.int8Weights), "logits");
    return g;
  }

  private normWeight(name: string): Value {
    return normWeight(this.g, this.w, this.c.hiddenSize, name);
  }

  /** (RMSNorm(x + y), x + y): the residual stream and the next sublayer's input. */
  private addAndNorm(x: Value, y: Value, weightName: string): [Value, Value] {
    const { g, c } = this;
    if (this.options.fused) return skipRmsNorm(g, x, y, this.normWeight(weightName), c.rmsNormEps);
    const sum = g.add(x, y);
    return [rmsNorm(g, sum, this.normWeight(weightName), c.rmsNormEps, false), sum];
  }

  /** The layer's attention; with `kvOutput: "new"` its new keys and values are appended to `newKv`. */
  private attention(linear: LayerLinear, layer: number, x: Value, bias: Value, past: PastKv, splitSizes: Value | undefined, newKv: Value[]): Value {
    const { g, c } = this;
    const { numHeads, numKvHeads, headDim } = c;
    const fused = this.options.fused;
    const qkv = linear(x, ["q_proj", "k_proj", "v_proj"], c.attentionBias);
    if (this.options.decodeOnly) {
      // T = 1, so [B, 1, heads·D] is [B, heads, 1, D]: heads-first without a transpose.
      const heads = g.reshape(qkv, [0, numHeads + 2 * numKvHeads, 1, headDim]);
      const [qk, v] = g.split(heads, [numHeads + numKvHeads, numKvHeads], 1);
      const [q, k] = g.split(this.rope.apply(qk, "bnsh"), [numHeads, numKvHeads], 1);
      newKv.push(k, v);
      return this.decodeAttention(linear, q, k, v, bias, past);
    }
    const { q, k, v } = rotatedHeads(g, c, qkv, this.rope, fused);
    const newKey = headsFirst(g, k);
    const newValue = headsFirst(g, v);
    const queries = groupQueries(g, c, headsFirst(g, q));

    let context: Value;
    if (splitSizes) {
      newKv.push(newKey, newValue);
      const scores = g.concat([scaledScores(g, c, queries, past.key, fused), scaledScores(g, c, queries, newKey, fused)], -1);
      const [toPast, toNew] = g.op("Split", [g.softmax(g.add(scores, bias)), splitSizes], { attrs: { axis: attr.int(-1) }, outputs: 2 });
      context = g.add(g.matmul(toPast, past.value), g.matmul(toNew, newValue));
    } else {
      const key = g.concat([past.key, newKey], 2);
      const value = g.concat([past.value, newValue], 2);
      g.output(key, `present_key.${layer}`);
      g.output(value, `present_value.${layer}`);
      context = attend(g, c, queries, key, value, bias, fused);
    }
    return linear(mergeHeads(g, c, context), ["o_proj"], false);
  }

  /**
   * Attention of one new token per sequence (T = 1): with T = 1 the [B, 1, heads, D] layout already
   * is [B, heads, 1, D], so no transposes; the score against the new key and its share of the
   * value are elementwise products instead of per-head matrix products.
   */
  private decodeAttention(linear: LayerLinear, q: Value, newKey: Value, newValue: Value, bias: Value, past: PastKv): Value {
    const { g, c } = this;
    const { numHeads, numKvHeads, headDim } = c;
    const queries = g.reshape(q, [0, numKvHeads, numHeads / numKvHeads, headDim]); // [B, kvHeads, group, D]
    const scale = g.constFloat([1 / Math.sqrt(headDim)], []);
    const toNew = g.mul(g.reduceSum(g.mul(queries, newKey), [-1]), scale); // [B, kvHeads, group, 1]
    const scores = g.add(g.concat([scaledScores(g, c, queries, past.key, this.options.fused), toNew], -1), bias);
    const [pastWeights, newWeight] = g.op("Split", [g.softmax(scores), this.pastAndOne(past.key)], { attrs: { axis: attr.int(-1) }, outputs: 2 });
    const context = g.add(g.matmul(pastWeights, past.value), g.mul(newWeight, newValue)); // [B, kvHeads, group, D]
    return linear(g.reshape(context, [0, 1, numHeads * headDim]), ["o_proj"], false);
  }

  /** [P, 1] as a tensor (computed once per graph). */
  private pastAndOne(pastKey: Value): Value {
    const g = this.g;
    this.pastAndOneSizes ??= g.concat([g.slice(g.shapeOf(pastKey), [2], [3], [0]), g.constInt64([1])], 0);
    return this.pastAndOneSizes;
  }

  /** [P, T] as a tensor, for splitting attention weights between past and new columns. */
  private pastAndNewSizes(pastKey: Value, inputIds: Value): Value {
    const g = this.g;
    const dim = (v: Value, axis: number) => g.slice(g.shapeOf(v), [axis], [axis + 1], [0]);
    return g.concat([dim(pastKey, 2), dim(inputIds, 1)], 0);
  }

  /** h [B, T, H] -> rows h[b, index[b, k]] as [B, K, H]. */
  private pickPositions(h: Value, index: Value): Value {
    const { g, c } = this;
    const int = (v: number) => g.constInt64([v], []);
    const shape = g.shapeOf(h);
    const batch = g.gather(shape, int(0));
    const seq = g.gather(shape, int(1));
    const rowStart = g.unsqueeze(g.mul(g.op1("Range", [int(0), batch, int(1)]), seq), [1]); // [B, 1]
    const flat = g.reshape(h, [-1, c.hiddenSize]);
    return g.gather(flat, g.add(index, rowStart));
  }
}
