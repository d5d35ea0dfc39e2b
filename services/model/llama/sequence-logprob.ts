/**
 * Per-sequence log-probabilities appended to a training graph (./training-graph.ts): for each row, the
 * sum over positions of log softmax(logits)[label] times the position's weight — the log-probability the
 * model gives a sequence's counted (answer) tokens. Preference losses (./preference-loss.ts) are built on it.
 *
 *   labels        int64 [B, T]  next token at each position (shifted by the caller, as ./loss.ts)
 *   loss_weights  float [B, T]  1 on the answer tokens, 0 on prompt and padding
 *   -> logps      float [B]     Σ_t w[b, t] · log p(labels[b, t] | tokens ≤ t)
 *
 * Standard ONNX ops only (./loss.ts `labelLogProbs`: LogSoftmax and a one-hot product; ReduceSum), so the generic reverse
 * pass (../graph/autodiff.ts) differentiates it.
 */
import type { Graph, Value } from "../graph/ir.ts";
import { labelLogProbs } from "./loss.ts";

export interface SequenceLogProbs {
  logps: Value;
  labels: Value;
  weights: Value;
}

/** Appends the inputs `labels` and `loss_weights` (unless given) and the per-row sums, output as "logps". */
export function appendSequenceLogProbs(g: Graph, logits: Value, inputs: { labels?: Value; weights?: Value } = {}): SequenceLogProbs {
  const labels = inputs.labels ?? g.input("labels", "int64", ["batch", "seq"]);
  const weights = inputs.weights ?? g.input("loss_weights", "float32", ["batch", "seq"]);
  const picked = labelLogProbs(g, logits, labels); // [B, T]
  const logps = g.reduceSum(g.mul(picked, weights), [1], false); // [B]
  return { logps: g.output(logps, "logps"), labels, weights };
}
