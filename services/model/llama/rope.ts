/**
 * Rotary position embedding (rotate-half RoPE, with Llama 3 frequency scaling) at given positions.
 *
 * `rotaryEmbedding` returns an applier whose tables are added to the graph on first use, so a
 * graph holds them once and only if it rotates anything. Layouts of the rotated tensor:
 *   "bsnh" [B, T, heads, D]; "bnsh" [B, heads, T, D] (T = 1 only without fused ops);
 *   "bsh"  [B, T, heads·D] (fused ops only; `heads` says how many are packed).
 * `fused: false` is x·cos + rotate_half(x)·sin in standard ONNX ops, rotate_half being a constant
 * [D, D] matrix (one MatMul), differentiable by a trainer; `fused: true` is onnxruntime's
 * com.microsoft RotaryEmbedding.
 */
import type { DecoderConfig } from "../config.ts";
import { attr, type Attr, type Graph, type Value } from "../graph/ir.ts";

export type RopeConfig = Pick<DecoderConfig, "headDim" | "ropeTheta" | "ropeScaling" | "maxPositionEmbeddings">;
export type RopeLayout = "bsnh" | "bnsh" | "bsh";

export interface RotaryEmbedding {
  apply(x: Value, layout: RopeLayout, heads?: number): Value;
}

/** RoPE at `positionIds` [B, T] (int64). */
export function rotaryEmbedding(g: Graph, c: RopeConfig, positionIds: Value, fused: boolean): RotaryEmbedding {
  let tables: { cos: Value; sin: Value } | undefined;
  let rotateHalf: Value | undefined;
  if (fused) {
    return {
      apply(x, layout, heads) {
        const { cos, sin } = (tables ??= halfRotaryTables(g, c));
        const packed: Record<string, Attr> = layout === "bsh" ? { num_heads: attr.int(requireHeads(heads)) } : {};
        return g.op1("RotaryEmbedding", [x, positionIds, cos, sin], {
          domain: "com.microsoft",
          attrs: { interleaved: attr.int(0), ...packed },
        });
      },
    };
  }
  return {
    apply(x, layout) {
      if (layout === "bsh") throw new Error('RoPE layout "bsh" needs fused ops');
      const { cos, sin } = (tables ??= rotaryTables(g, c, positionIds));
      rotateHalf ??= rotateHalfMatrix(g, c.headDim);
      return g.add(g.mul(x, cos), g.mul(g.matmul(x, rotateHalf), sin));
    },
  };
}

function requireHeads(heads: number | undefined): number {
  if (heads === undefined) throw new Error('RoPE layout "bsh" needs the number of packed heads');
  return heads;
}

/** cos and sin [B, T, 1, headDim] for rotate-half RoPE, gathered from precomputed tables. */
function rotaryTables(g: Graph, c: RopeConfig, positionIds: Value): { cos: Value; sin: Value } {
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

/** The constant [D, D] matrix R with x·R = rotate_half(x) = [-x2, x1]. */
function rotateHalfMatrix(g: Graph, d: number): Value {
  const half = d / 2;
  const rotation = new Float32Array(d * d);
  for (let i = 0; i < half; i++) {
    rotation[(half + i) * d + i] = -1; // out[i] = -x[half + i]
    rotation[i * d + half + i] = 1; // out[half + i] = x[i]
  }
  return g.initializer("rope_rotate_half", "float32", [d, d], rotation);
}

/** cos/sin [maxPositions, headDim/2] as onnxruntime's RotaryEmbedding wants them. */
function halfRotaryTables(g: Graph, c: RopeConfig): { cos: Value; sin: Value } {
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

/** RoPE inverse frequencies (with Llama 3 scaling), as the compiler computes them. */
export function ropeInverseFrequencies(c: Pick<RopeConfig, "headDim" | "ropeTheta" | "ropeScaling">): Float64Array {
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
