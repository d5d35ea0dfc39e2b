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
 * With `kvOutput: "new"` the graph returns only the new keys and values instead,
 *   -> new_key.{i} / new_value.{i}  float [B, kvHeads, T, headDim]
 * and attends to past and new without concatenating them, so a caller that keeps the cache in
 * preallocated buffers (unused columns masked out) never has the whole cache copied per step.
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
 */
import type { DecoderConfig } from "./config.ts";
import { attr, Graph, type Attr, type Value } from "./graph/ir.ts";

/** Bumped whenever the emitted graph changes, so cached compilations are invalidated. */
export const DECODER_COMPILER_VERSION = "decoder-6";

export const LORA_TARGET_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
type Target = (typeof LORA_TARGET_NAMES)[number];

export interface DecoderWeights {
  has(name: string): boolean;
  getF32(name: string): Float32Array;
}

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
}

const MASKED = -1e30;

export function loraInputName(layer: number, target: Target, part: "a" | "b"): string {
  return `lora.${layer}.${target}.${part}`;
}

/** In/out features of an adaptable projection. */
export function projectionShape(config: DecoderConfig, target: Target): { in: number; out: number } {
  const { hiddenSize: h, intermediateSize: m, numHeads, numKvHeads, headDim } = config;
  switch (target) {
    case "q_proj":
      return { in: h, out: numHeads * headDim };
    case "k_proj":
    case "v_proj":
      return { in: h, out: numKvHeads * headDim };
    case "o_proj":
      return { in: numHeads * headDim, out: h };
    case "gate_proj":
    case "up_proj":
      return { in: h, out: m };
    case "down_proj":
      return { in: m, out: h };
  }
}

export function buildDecoderGraph(config: DecoderConfig, weights: DecoderWeights, options: DecoderOptions = {}): Graph {
  const fused = options.fused ?? options.fusedNorm;
  const kvOutput = options.decodeOnly ? "new" : options.kvOutput;
  return new DecoderBuilder(config, weights, { ...options, fused, kvOutput }).build();
}

class DecoderBuilder {
  private readonly g = new Graph("decoder");
  /** The LoRA segment indices (see the header). */
  private loraSegments?: { gather: Value; scatter: Value };
  private positionIds!: Value;
  private ropeTables?: { cos: Value; sin: Value };
  private ropeHalfTables?: { cos: Value; sin: Value };
  private rotateHalf?: Value;

  constructor(
    private readonly c: DecoderConfig,
    private readonly w: DecoderWeights,
    private readonly options: DecoderOptions,
  ) {}

  build(): Graph {
    const { g, c } = this;
    const seq = this.options.decodeOnly ? 1 : "seq";
    const inputIds = g.input("input_ids", "int64", ["batch", seq]);
    const positionIds = g.input("position_ids", "int64", ["batch", seq]);
    const mask = g.input("attention_mask", "int64", ["batch", "total"]);
    const logitsIndex = g.input("logits_index", "int64", ["batch", this.options.decodeOnly ? 1 : "picked"]);
    const past = Array.from({ length: c.numLayers }, (_, i) => ({
      key: g.input(`past_key.${i}`, "float32", ["batch", c.numKvHeads, "past", c.headDim]),
      value: g.input(`past_value.${i}`, "float32", ["batch", c.numKvHeads, "past", c.headDim]),
    }));
    if (this.options.lora) {
      this.loraSegments = { gather: g.input("lora_gather", "int64", ["lora_slots", "lora_rows"]), scatter: g.input("lora_scatter", "int64", ["batch", seq]) };
    }

    const embedTokens = g.initializer("embed_tokens", "float32", [c.vocabSize, c.hiddenSize], this.weight("model.embed_tokens.weight"));
    let h = g.gather(embedTokens, inputIds);
    this.positionIds = positionIds;
    const bias = this.attentionBias(inputIds, mask);

    const splitSizes = this.options.kvOutput === "new" && !this.options.decodeOnly ? this.pastAndNewSizes(past[0].key, inputIds) : undefined;
    let normed = this.rmsNorm(h, "model.layers.0.input_layernorm.weight");
    for (let i = 0; i < c.numLayers; i++) {
      const attn = this.attention(i, normed, bias, past[i], splitSizes);
      [normed, h] = this.addAndNorm(h, attn, `model.layers.${i}.post_attention_layernorm.weight`);
      const mlp = this.mlp(i, normed);
      const next = i + 1 < c.numLayers ? `model.layers.${i + 1}.input_layernorm.weight` : "model.norm.weight";
      [normed, h] = this.addAndNorm(h, mlp, next);
    }

    // A decode step has one position per sequence: its logits are the only ones.
    const picked = this.options.decodeOnly ? normed : this.pickPositions(normed, logitsIndex);
    g.output(this.outputHead(picked, embedTokens), "logits");
    return g;
  }

  /** hidden · headᵀ, the head being the embeddings when tied ([vocab, hidden] either way). */
  private outputHead(hidden: Value, embedTokens: Value): Value {
    const { g, c } = this;
    if (this.options.fused) {
      const head = c.tieWordEmbeddings ? embedTokens : g.initializer("lm_head", "float32", [c.vocabSize, c.hiddenSize], this.weight("lm_head.weight"));
      return g.op1("FusedMatMul", [hidden, head], { domain: "com.microsoft", attrs: { transB: attr.int(1) } });
    }
    const headName = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    return g.matmul(hidden, g.initializer("lm_head", "float32", [c.hiddenSize, c.vocabSize], transpose(this.weight(headName), c.vocabSize, c.hiddenSize)));
  }

  private weight(name: string): Float32Array {
    if (!this.w.has(name)) throw new Error(`missing tensor "${name}" in the model weights`);
    return this.w.getF32(name);
  }

  private normWeight(weightName: string): Value {
    return this.g.initializer(weightName.replace(/^model\./, ""), "float32", [this.c.hiddenSize], this.weight(weightName));
  }

  /** (RMSNorm(x + y), x + y): the residual stream and the next sublayer's input. */
  private addAndNorm(x: Value, y: Value, weightName: string): [Value, Value] {
    const { g, c } = this;
    if (!this.options.fused) {
      const sum = g.add(x, y);
      return [this.rmsNorm(sum, weightName), sum];
    }
    const [normed, , , sum] = g.op("SkipSimplifiedLayerNormalization", [x, y, this.normWeight(weightName)], {
      domain: "com.microsoft",
      outputs: 4,
      attrs: { epsilon: attr.float(c.rmsNormEps) },
    });
    return [normed, sum];
  }

  private rmsNorm(x: Value, weightName: string): Value {
    const { g, c } = this;
    const weight = this.normWeight(weightName);
    if (this.options.fused) {
      return g.op1("SimplifiedLayerNormalization", [x, weight], {
        attrs: { axis: attr.int(-1), epsilon: attr.float(c.rmsNormEps) },
      });
    }
    const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
    const inv = g.op1("Reciprocal", [g.sqrt(g.add(meanSquare, g.constFloat([c.rmsNormEps])))]);
    return g.mul(g.mul(x, inv), weight);
  }

  /** cos and sin [B, T, 1, headDim] for rotate-half RoPE, gathered from precomputed tables. */
  private rotaryTables(positionIds: Value): { cos: Value; sin: Value } {
    const { g, c } = this;
    const half = c.headDim / 2;
    const inv = ropeInverseFrequencies(c);
    const rows = c.maxPositionEmbeddings;
    const cos = new Float32Array(rows * c.headDim);
    const sin = new Float32Array(rows * c.headDim);
    for (let p = 0; p < rows; p++) {
      for (let i = 0; i < half; i++) {
        const angle = p * inv[i];
        cos[p * c.headDim + i] = cos[p * c.headDim + half + i] = Math.cos(angle);
        sin[p * c.headDim + i] = sin[p * c.headDim + half + i] = Math.sin(angle);
      }
    }
    const table = (name: string, data: Float32Array) =>
      g.unsqueeze(g.gather(g.initializer(name, "float32", [rows, c.headDim], data), positionIds), [2]);
    return { cos: table("rope_cos", cos), sin: table("rope_sin", sin) };
  }

  /**
   * Additive attention bias [B, 1, group·T, S]: 0 where a query may look at a column, else a large
   * negative number. Rows are tiled per query head of a key/value group (see `attention`).
   */
  private attentionBias(inputIds: Value, mask: Value): Value {
    const { g, c } = this;
    if (this.options.decodeOnly) {
      // The single query sits in the last column: it may see every real column. [B, 1, 1, S]
      return g.unsqueeze(g.where(g.cast(mask, "bool"), g.constFloat([0], []), g.constFloat([MASKED], [])), [1, 2]);
    }
    const int = (v: number) => g.constInt64([v], []);
    const total = g.gather(g.shapeOf(mask), int(1));
    const seq = g.gather(g.shapeOf(inputIds), int(1));
    const columns = g.op1("Range", [int(0), total, int(1)]);
    const queryColumns = g.unsqueeze(g.op1("Range", [g.sub(total, seq), total, int(1)]), [1]);
    const causal = g.op1("LessOrEqual", [columns, queryColumns], { dtype: "bool" }); // [T, S]
    const real = g.unsqueeze(g.cast(mask, "bool"), [1]); // [B, 1, S]
    const allowed = g.op1("And", [causal, real], { dtype: "bool" }); // [B, T, S]
    const bias = g.unsqueeze(g.where(allowed, g.constFloat([0], []), g.constFloat([MASKED], [])), [1]);
    const group = c.numHeads / c.numKvHeads;
    return group === 1 ? bias : g.op1("Tile", [bias, g.constInt64([1, 1, group, 1])]);
  }

  /** x [B, T, in] -> x·W (+ bias) (+ LoRA) for the named projections, fused into one MatMul. */
  private projections(layer: number, x: Value, targets: Target[], module: "self_attn" | "mlp", withBias: boolean): Value {
    const { g, c } = this;
    const shapes = targets.map((t) => projectionShape(c, t));
    const inSize = shapes[0].in;
    const outTotal = shapes.reduce((a, s) => a + s.out, 0);
    const fused = new Float32Array(inSize * outTotal);
    let column = 0;
    targets.forEach((t, k) => {
      const w = this.weight(`model.layers.${layer}.${module}.${t}.weight`); // [out, in]
      const out = shapes[k].out;
      for (let o = 0; o < out; o++) for (let i = 0; i < inSize; i++) fused[i * outTotal + column + o] = w[o * inSize + i];
      column += out;
    });
    const name = `layers.${layer}.${targets.map((t) => t.replace("_proj", "")).join("")}`;
    let y = g.matmul(x, g.initializer(name, "float32", [inSize, outTotal], fused));
    if (withBias) {
      const parts = targets.map((t) => this.weight(`model.layers.${layer}.${module}.${t}.bias`));
      const bias = new Float32Array(outTotal);
      let at = 0;
      for (const p of parts) {
        bias.set(p, at);
        at += p.length;
      }
      y = g.add(y, g.initializer(`${name}.bias`, "float32", [outTotal], bias));
    }
    if (this.loraSegments) y = g.add(y, this.loraDelta(layer, x, targets, shapes));
    return y;
  }

  /** Gathers each slot's rows of x into a segment, two batched products per target, scatters back. */
  private loraDelta(layer: number, x: Value, targets: Target[], shapes: Array<{ in: number; out: number }>): Value {
    const g = this.g;
    const { gather, scatter } = this.loraSegments!;
    const segments = g.gather(g.reshape(x, [-1, shapes[0].in]), gather); // [slots, rows, in]
    const deltas = targets.map((t, k) => {
      const a = g.input(loraInputName(layer, t, "a"), "float32", ["lora_slots", shapes[k].in, "lora_rank"]);
      const b = g.input(loraInputName(layer, t, "b"), "float32", ["lora_slots", "lora_rank", shapes[k].out]);
      return g.matmul(g.matmul(segments, a), b);
    });
    const outTotal = shapes.reduce((n, s) => n + s.out, 0);
    const joined = deltas.length === 1 ? deltas[0] : g.concat(deltas, -1); // [slots, rows, outTotal]
    const rows = g.concat([g.reshape(joined, [-1, outTotal]), g.constFloat(new Array(outTotal).fill(0), [1, outTotal])], 0);
    return g.gather(rows, scatter); // [B, T, outTotal]; rows without an adapter take the zero row
  }

  private attention(layer: number, x: Value, bias: Value, past: { key: Value; value: Value }, splitSizes: Value | undefined): Value {
    const { g, c } = this;
    const { numHeads, numKvHeads, headDim } = c;
    const qkv = this.projections(layer, x, ["q_proj", "k_proj", "v_proj"], "self_attn", c.attentionBias);
    if (this.options.decodeOnly) {
      // T = 1, so [B, 1, heads·D] is [B, heads, 1, D]: heads-first without a transpose.
      const heads = g.reshape(qkv, [0, numHeads + 2 * numKvHeads, 1, headDim]);
      const [qk, v] = g.split(heads, [numHeads + numKvHeads, numKvHeads], 1);
      const [q, k] = g.split(this.applyRope(qk, "bnsh"), [numHeads, numKvHeads], 1);
      return this.decodeAttention(layer, q, k, v, bias, past);
    }
    const { q, k, v } = this.rotatedHeads(qkv);
    const toHeadsFirst = (t: Value) => g.transpose(t, [0, 2, 1, 3]); // [B, heads, T, D]
    const newKey = toHeadsFirst(k);
    const newValue = toHeadsFirst(v);
    // Query heads of one key/value group stacked along the row axis: [B, kvHeads, group·T, D].
    const queries = g.reshape(toHeadsFirst(q), [0, numKvHeads, -1, headDim]);

    let context: Value;
    if (splitSizes) {
      g.output(newKey, `new_key.${layer}`);
      g.output(newValue, `new_value.${layer}`);
      const scores = g.concat([this.scores(queries, past.key), this.scores(queries, newKey)], -1);
      const [toPast, toNew] = g.op("Split", [g.softmax(g.add(scores, bias)), splitSizes], { attrs: { axis: attr.int(-1) }, outputs: 2 });
      context = g.add(g.matmul(toPast, past.value), g.matmul(toNew, newValue));
    } else {
      const key = g.concat([past.key, newKey], 2);
      const value = g.concat([past.value, newValue], 2);
      g.output(key, `present_key.${layer}`);
      g.output(value, `present_value.${layer}`);
      context = g.matmul(g.softmax(g.add(this.scores(queries, key), bias)), value);
    }
    const group = numHeads / numKvHeads;
    const merged = g.reshape(g.transpose(g.reshape(context, [0, numKvHeads * group, -1, headDim]), [0, 2, 1, 3]), [0, 0, numHeads * headDim]);
    return this.projections(layer, merged, ["o_proj"], "self_attn", false);
  }

  /** q, k (rotated) and v as [B, T, heads, D] from the fused projection [B, T, (heads)·D]. */
  private rotatedHeads(qkv: Value): { q: Value; k: Value; v: Value } {
    const { g, c } = this;
    const { numHeads, numKvHeads, headDim } = c;
    if (this.options.fused) {
      const [qk, v] = g.split(qkv, [(numHeads + numKvHeads) * headDim, numKvHeads * headDim], -1);
      const [q, k] = g.split(g.reshape(this.applyRope(qk, "bsh"), [0, 0, numHeads + numKvHeads, headDim]), [numHeads, numKvHeads], 2);
      return { q, k, v: g.reshape(v, [0, 0, numKvHeads, headDim]) };
    }
    const heads = g.reshape(qkv, [0, 0, numHeads + 2 * numKvHeads, headDim]);
    const [qk, v] = g.split(heads, [numHeads + numKvHeads, numKvHeads], 2);
    const [q, k] = g.split(this.applyRope(qk, "bsnh"), [numHeads, numKvHeads], 2);
    return { q, k, v };
  }

  /**
   * Attention of one new token per sequence (T = 1): with T = 1 the [B, 1, heads, D] layout already
   * is [B, heads, 1, D], so no transposes; the score against the new key and its share of the
   * value are elementwise products instead of per-head matrix products.
   */
  private decodeAttention(layer: number, q: Value, newKey: Value, newValue: Value, bias: Value, past: { key: Value; value: Value }): Value {
    const { g, c } = this;
    const { numHeads, numKvHeads, headDim } = c;
    const queries = g.reshape(q, [0, numKvHeads, numHeads / numKvHeads, headDim]); // [B, kvHeads, group, D]
    g.output(newKey, `new_key.${layer}`);
    g.output(newValue, `new_value.${layer}`);
    const scale = g.constFloat([1 / Math.sqrt(headDim)], []);
    const toNew = g.mul(g.reduceSum(g.mul(queries, newKey), [-1]), scale); // [B, kvHeads, group, 1]
    const scores = g.add(g.concat([this.scores(queries, past.key), toNew], -1), bias);
    const [pastWeights, newWeight] = g.op("Split", [g.softmax(scores), this.pastAndOne(past.key)], { attrs: { axis: attr.int(-1) }, outputs: 2 });
    const context = g.add(g.matmul(pastWeights, past.value), g.mul(newWeight, newValue)); // [B, kvHeads, group, D]
    return this.projections(layer, g.reshape(context, [0, 1, numHeads * headDim]), ["o_proj"], "self_attn", false);
  }

  private pastAndOneSizes?: Value;

  /** [P, 1] as a tensor (computed once per graph). */
  private pastAndOne(pastKey: Value): Value {
    const g = this.g;
    this.pastAndOneSizes ??= g.concat([g.slice(g.shapeOf(pastKey), [2], [3], [0]), g.constInt64([1])], 0);
    return this.pastAndOneSizes;
  }

  /** q·kᵀ / sqrt(headDim). */
  private scores(queries: Value, keys: Value): Value {
    const { g, c } = this;
    const scale = 1 / Math.sqrt(c.headDim);
    if (this.options.fused) {
      return g.op1("FusedMatMul", [queries, keys], { domain: "com.microsoft", attrs: { transB: attr.int(1), alpha: attr.float(scale) } });
    }
    return g.mul(g.matmul(queries, g.transpose(keys, [0, 1, 3, 2])), g.constFloat([scale], []));
  }

  /** [P, T] as a tensor, for splitting attention weights between past and new columns. */
  private pastAndNewSizes(pastKey: Value, inputIds: Value): Value {
    const g = this.g;
    const dim = (v: Value, axis: number) => g.slice(g.shapeOf(v), [axis], [axis + 1], [0]);
    return g.concat([dim(pastKey, 2), dim(inputIds, 1)], 0);
  }

  /**
   * Rotate-half RoPE at `position_ids`. Layouts: "bsnh" [B, T, heads, D], "bnsh" [B, heads, T, D]
   * (T = 1 only without fused ops), "bsh" [B, T, heads·D] (fused ops only). With fused ops it is
   * onnxruntime's RotaryEmbedding; otherwise x·cos + rotate_half(x)·sin, rotate_half being a
   * constant [D, D] matrix (one MatMul).
   */
  private applyRope(x: Value, layout: "bsnh" | "bnsh" | "bsh"): Value {
    const { g, c } = this;
    if (this.options.fused) {
      const { cos, sin } = (this.ropeHalfTables ??= this.halfRotaryTables());
      const heads: Record<string, Attr> = layout === "bsh" ? { num_heads: attr.int(c.numHeads + c.numKvHeads) } : {};
      return g.op1("RotaryEmbedding", [x, this.positionIds, cos, sin], {
        domain: "com.microsoft",
        attrs: { interleaved: attr.int(0), ...heads },
      });
    }
    const { cos, sin } = (this.ropeTables ??= this.rotaryTables(this.positionIds));
    const d = c.headDim;
    const half = d / 2;
    if (!this.rotateHalf) {
      const rotation = new Float32Array(d * d);
      for (let i = 0; i < half; i++) {
        rotation[(half + i) * d + i] = -1; // out[i] = -x[half + i]
        rotation[i * d + half + i] = 1; // out[half + i] = x[i]
      }
      this.rotateHalf = g.initializer("rope_rotate_half", "float32", [d, d], rotation);
    }
    return g.add(g.mul(x, cos), g.mul(g.matmul(x, this.rotateHalf), sin));
  }

  /** cos/sin [maxPositions, headDim/2] as onnxruntime's RotaryEmbedding wants them. */
  private halfRotaryTables(): { cos: Value; sin: Value } {
    const { g, c } = this;
    const half = c.headDim / 2;
    const inv = ropeInverseFrequencies(c);
    const rows = c.maxPositionEmbeddings;
    const cos = new Float32Array(rows * half);
    const sin = new Float32Array(rows * half);
    for (let p = 0; p < rows; p++) {
      for (let i = 0; i < half; i++) {
        cos[p * half + i] = Math.cos(p * inv[i]);
        sin[p * half + i] = Math.sin(p * inv[i]);
      }
    }
    return { cos: g.initializer("rope_cos_half", "float32", [rows, half], cos), sin: g.initializer("rope_sin_half", "float32", [rows, half], sin) };
  }

  private mlp(layer: number, x: Value): Value {
    const { g, c } = this;
    const gateUp = this.projections(layer, x, ["gate_proj", "up_proj"], "mlp", false);
    const [gate, up] = g.split(gateUp, [c.intermediateSize, c.intermediateSize], -1);
    return this.projections(layer, g.mul(g.silu(gate), up), ["down_proj"], "mlp", false);
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

/** RoPE inverse frequencies (with Llama 3 scaling), as the compiler computes them. */
function ropeInverseFrequencies(c: DecoderConfig): Float64Array {
  const half = c.headDim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => Math.pow(c.ropeTheta, (-2 * i) / c.headDim));
  const s = c.ropeScaling;
  if (!s) return inv;
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[k * rows + r] = m[r * cols + k];
  return out;
}
