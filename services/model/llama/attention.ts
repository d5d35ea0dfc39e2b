/**
 * The attention core of a Llama-family layer: splitting the fused q/k/v projection into heads
 * (with RoPE), the additive causal/padding bias, scaled scores, softmax and the value product,
 * and merging the heads back.
 *
 * Grouped-query attention (GQA) repeats no key/value head: the query heads that share a key/value
 * head are stacked along the row axis, queries [B, kvHeads, group·T, D] against keys
 * [B, kvHeads, S, D], so every product is one batched MatMul over kvHeads; the bias rows are tiled
 * per query head to match.
 *
 * `fused: false` uses standard ONNX ops only (differentiable by a trainer); `fused: true` computes
 * the scores with com.microsoft FusedMatMul (transposed, scaled).
 */
import type { DecoderConfig } from "../config.ts";
import { attr, type Graph, type Value } from "../graph/ir.ts";
import type { RotaryEmbedding } from "./rope.ts";

export type HeadConfig = Pick<DecoderConfig, "numHeads" | "numKvHeads" | "headDim">;

/** The additive bias of a masked score: exp(score + MASKED) is 0. */
export const MASKED = -1e30;

/**
 * Additive attention bias [B, 1, group·T, S]: 0 where a query may look at a column, else MASKED.
 * Columns are causal (a query sees no column after its own; the T queries are the last T of the
 * S columns: left padding) and must be real in `mask` [B, S] (int64, 1 = token, 0 = padding).
 */
export function causalBias(g: Graph, c: HeadConfig, inputIds: Value, mask: Value): Value {
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

/**
 * Additive attention bias [B, 1, group·T, T] of packed rows (several sequences concatenated in one row,
 * the training graph's `segment_ids`): a query sees a column when it is not after the query, is a real
 * token in `mask`, and belongs to the query's own segment, so each packed sequence attends only to itself
 * (a block-diagonal causal mask). Queries and columns are the same T tokens (no past).
 */
export function segmentCausalBias(g: Graph, c: HeadConfig, segmentIds: Value, mask: Value): Value {
  const int = (v: number) => g.constInt64([v], []);
  const seq = g.gather(g.shapeOf(segmentIds), int(1));
  const columns = g.op1("Range", [int(0), seq, int(1)]);
  const causal = g.op1("LessOrEqual", [columns, g.unsqueeze(columns, [1])], { dtype: "bool" }); // [T, T]
  const same = g.equal(g.unsqueeze(segmentIds, [2]), g.unsqueeze(segmentIds, [1])); // [B, T, T]
  const real = g.unsqueeze(g.cast(mask, "bool"), [1]); // [B, 1, T]
  const allowed = g.op1("And", [g.op1("And", [causal, same], { dtype: "bool" }), real], { dtype: "bool" });
  const bias = g.unsqueeze(g.where(allowed, g.constFloat([0], []), g.constFloat([MASKED], [])), [1]);
  const group = c.numHeads / c.numKvHeads;
  return group === 1 ? bias : g.op1("Tile", [bias, g.constInt64([1, 1, group, 1])]);
}

/** Bias [B, 1, 1, S] of a single query in the last column: it may see every real column. */
export function lastQueryBias(g: Graph, mask: Value): Value {
  return g.unsqueeze(g.where(g.cast(mask, "bool"), g.constFloat([0], []), g.constFloat([MASKED], [])), [1, 2]);
}

/**
 * q, k (rotated) and v as [B, T, heads, D] from the fused projection [B, T, (heads + 2·kvHeads)·D].
 * With fused ops RoPE runs on the packed [B, T, heads·D] layout, sparing a reshape.
 */
export function rotatedHeads(g: Graph, c: HeadConfig, qkv: Value, rope: RotaryEmbedding, fused: boolean): { q: Value; k: Value; v: Value } {
  const { numHeads, numKvHeads, headDim } = c;
  if (fused) {
    const [qk, v] = g.split(qkv, [(numHeads + numKvHeads) * headDim, numKvHeads * headDim], -1);
    const [q, k] = g.split(g.reshape(rope.apply(qk, "bsh", numHeads + numKvHeads), [0, 0, numHeads + numKvHeads, headDim]), [numHeads, numKvHeads], 2);
    return { q, k, v: g.reshape(v, [0, 0, numKvHeads, headDim]) };
  }
  const heads = g.reshape(qkv, [0, 0, numHeads + 2 * numKvHeads, headDim]);
  const [qk, v] = g.split(heads, [numHeads + numKvHeads, numKvHeads], 2);
  const [q, k] = g.split(rope.apply(qk, "bsnh"), [numHeads, numKvHeads], 2);
  return { q, k, v };
}

/** [B, T, heads, D] -> [B, heads, T, D]. */
export function headsFirst(g: Graph, x: Value): Value {
  return g.transpose(x, [0, 2, 1, 3]);
}

/** Queries [B, heads, T, D] -> the query heads of each key/value group stacked: [B, kvHeads, group·T, D]. */
export function groupQueries(g: Graph, c: HeadConfig, queries: Value): Value {
  return g.reshape(queries, [0, c.numKvHeads, -1, c.headDim]);
}

/** q·kᵀ / sqrt(headDim) for queries [B, kvHeads, R, D] and keys [B, kvHeads, S, D]: [B, kvHeads, R, S]. */
export function scaledScores(g: Graph, c: HeadConfig, queries: Value, keys: Value, fused: boolean): Value {
  const scale = 1 / Math.sqrt(c.headDim);
  if (fused) {
    return g.op1("FusedMatMul", [queries, keys], { domain: "com.microsoft", attrs: { transB: attr.int(1), alpha: attr.float(scale) } });
  }
  // scaling the queries (D wide) rather than the scores (S wide) spares an elementwise pass over [B, kvHeads, R, S]
  return g.matmul(g.mul(queries, g.constFloat([scale], [])), g.transpose(keys, [0, 1, 3, 2]));
}

/** softmax(q·kᵀ/sqrt(D) + bias)·v: the context [B, kvHeads, group·T, D] of grouped queries. */
export function attend(g: Graph, c: HeadConfig, queries: Value, keys: Value, values: Value, bias: Value, fused: boolean): Value {
  return g.matmul(g.softmax(g.add(scaledScores(g, c, queries, keys, fused), bias)), values);
}

/** Context [B, kvHeads, group·T, D] -> [B, T, heads·D], the input of o_proj. */
export function mergeHeads(g: Graph, c: HeadConfig, context: Value): Value {
  const { numHeads, numKvHeads, headDim } = c;
  const group = numHeads / numKvHeads;
  return g.reshape(g.transpose(g.reshape(context, [0, numKvHeads * group, -1, headDim]), [0, 2, 1, 3]), [0, 0, numHeads * headDim]);
}
