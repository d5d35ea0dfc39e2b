/**
 * The linear layers of a decoder layer. Projections that read the same input (q/k/v, gate/up) are
 * packed into one [in, Σout] initializer and one MatMul; a LoRA branch, when given, adds its delta
 * for the same targets. Standard ONNX ops only.
 */
import type { DecoderConfig } from "../config.ts";
import type { Graph, Value } from "../graph/ir.ts";
import { loraModuleName, projectionShape, type LoraTarget } from "../lora-layout.ts";
import { derived, requireWeight, type DecoderWeights } from "./weights.ts";

export interface ProjectionShape {
  in: number;
  out: number;
}

/** The LoRA delta [B, T, Σout] of `targets` (in order, concatenated) for x [B, T, in] in `layer`. */
export type LoraBranch = (layer: number, x: Value, targets: readonly LoraTarget[], shapes: readonly ProjectionShape[]) => Value;

/** x [B, T, in] -> x·W (+ bias) (+ LoRA) of one layer's `targets`, concatenated along the last axis. */
export type LayerLinear = (x: Value, targets: readonly LoraTarget[], withBias: boolean) => Value;

/** The packed projections of decoder layer `layer`. */
export function layerLinear(g: Graph, c: DecoderConfig, weights: DecoderWeights, layer: number, lora?: LoraBranch): LayerLinear {
  return (x, targets, withBias) => {
    const shapes = targets.map((t) => projectionShape(c, t));
    const outTotal = shapes.reduce((a, s) => a + s.out, 0);
    const name = `layers.${layer}.${targets.map((t) => t.replace("_proj", "")).join("")}`;
    const packed = derived(weights, name, () => packTransposed(targets.map((t) => requireWeight(weights, `${loraModuleName(layer, t)}.weight`)), shapes));
    let y = g.matmul(x, g.initializer(name, "float32", [shapes[0].in, outTotal], packed));
    if (withBias) {
      const bias = concatenated(targets.map((t) => requireWeight(weights, `${loraModuleName(layer, t)}.bias`)));
      y = g.add(y, g.initializer(`${name}.bias`, "float32", [outTotal], bias));
    }
    if (lora) y = g.add(y, lora(layer, x, targets, shapes));
    return y;
  };
}

/** Tile edge of the transpose: tiles of both matrices stay in cache (a plain loop's strided writes miss on every element). */
const TILE = 32;

/** Hugging Face [out, in] weights (same `in`) -> one row-major [in, Σout] matrix. */
function packTransposed(weights: Float32Array[], shapes: readonly ProjectionShape[]): Float32Array {
  const inSize = shapes[0].in;
  const outTotal = shapes.reduce((a, s) => a + s.out, 0);
  const packed = new Float32Array(inSize * outTotal);
  let column = 0;
  weights.forEach((w, k) => {
    const out = shapes[k].out;
    for (let o0 = 0; o0 < out; o0 += TILE) {
      const o1 = Math.min(o0 + TILE, out);
      for (let i0 = 0; i0 < inSize; i0 += TILE) {
        const i1 = Math.min(i0 + TILE, inSize);
        for (let i = i0; i < i1; i++) {
          const row = i * outTotal + column;
          for (let o = o0; o < o1; o++) packed[row + o] = w[o * inSize + i];
        }
      }
    }
    column += out;
  });
  return packed;
}

function concatenated(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
