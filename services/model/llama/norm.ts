/**
 * RMS normalisation of the residual stream, over the last axis: x / sqrt(mean(x²) + eps) · weight.
 *
 * `fused: false` uses standard ONNX ops only (differentiable by a trainer); `fused: true` uses
 * onnxruntime's SimplifiedLayerNormalization (and, in `skipRmsNorm`, its com.microsoft
 * SkipSimplifiedLayerNormalization).
 */
import { attr, type Graph, type Value } from "../graph/ir.ts";
import { requireWeight, type DecoderWeights } from "./weights.ts";

/** RMSNorm(x)·weight; `weight` is [hidden]. */
export function rmsNorm(g: Graph, x: Value, weight: Value, eps: number, fused: boolean): Value {
  if (fused) {
    return g.op1("SimplifiedLayerNormalization", [x, weight], {
      attrs: { axis: attr.int(-1), epsilon: attr.float(eps) },
    });
  }
  const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
  const inv = g.op1("Reciprocal", [g.sqrt(g.add(meanSquare, g.constFloat([eps])))]);
  return g.mul(g.mul(x, inv), weight);
}

/**
 * (RMSNorm(x + y)·weight, x + y) in one com.microsoft op. The elementary form is `g.add(x, y)`
 * followed by `rmsNorm(..., fused: false)`.
 */
export function skipRmsNorm(g: Graph, x: Value, y: Value, weight: Value, eps: number): [Value, Value] {
  const [normed, , , sum] = g.op("SkipSimplifiedLayerNormalization", [x, y, weight], {
    domain: "com.microsoft",
    outputs: 4,
    attrs: { epsilon: attr.float(eps) },
  });
  return [normed, sum];
}

/** The norm weight `name` (e.g. "model.norm.weight") as an initializer [hidden] named without "model.". */
export function normWeight(g: Graph, weights: DecoderWeights, hiddenSize: number, name: string): Value {
  return g.initializer(name.replace(/^model\./, ""), "float32", [hiddenSize], requireWeight(weights, name));
}
