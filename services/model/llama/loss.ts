/**
 * The causal-LM training loss appended to a training graph (./training-graph.ts): masked, weighted
 * mean token cross-entropy of the logits at every position, from standard ONNX ops only, so the
 * reverse-mode pass (../graph/autodiff.ts) differentiates it like the rest of the graph.
 *
 *   labels        int64 [B, T]  the token each position should predict (already shifted by the caller:
 *                               labels[b, t] = input_ids[b, t + 1]); any value where the weight is 0
 *   loss_weights  float [B, T]  weight of each position: 0 for prompt and padding tokens, 1 for counted ones
 *   -> loss       float []      Σ w·(−log softmax(logits)[label]) / Σ w   (0 when Σ w = 0, never NaN)
 *
 * log-softmax is ONNX LogSoftmax (stable: x − max(x) − log Σ exp(x − max(x)), one kernel, and one cheap
 * backward rule, where the spelled-out form would also differentiate through the max). The label is picked by a one-hot
 * product rather than a gather, so an ignored label (e.g. −100) needs no clamping.
 */
import { attr, type Graph, type Value } from "../graph/ir.ts";

export interface CausalLmLoss {
  loss: Value;
  labels: Value;
  weights: Value;
}

/** log p(label) at every position [B, T]: LogSoftmax over the vocabulary, the label picked by a one-hot product. */
export function labelLogProbs(g: Graph, logits: Value, labels: Value): Value {
  const logProbs = g.op1("LogSoftmax", [logits], { attrs: { axis: attr.int(-1) }, shape: logits.shape }); // [B, T, V]
  const vocab = g.gather(g.shapeOf(logits), g.constInt64([-1], []));
  const tokens = g.op1("Range", [g.constInt64([0], []), vocab, g.constInt64([1], [])]);
  const oneHot = g.cast(g.equal(g.unsqueeze(labels, [-1]), tokens), "float32"); // [B, T, V]
  return g.reduceSum(g.mul(logProbs, oneHot), [-1], false);
}

/** Appends the inputs `labels` and `loss_weights` (unless given) and the scalar loss, output as "loss". */
export function appendCausalLmLoss(g: Graph, logits: Value, inputs: { labels?: Value; weights?: Value } = {}): CausalLmLoss {
  const labels = inputs.labels ?? g.input("labels", "int64", ["batch", "seq"]);
  const weights = inputs.weights ?? g.input("loss_weights", "float32", ["batch", "seq"]);
  const nll = g.neg(labelLogProbs(g, logits, labels)); // [B, T]

  const counted = g.op1("Max", [g.reduceSum(weights, [0, 1], false), g.constFloat([1e-12], [])]);
  const loss = g.op1("Div", [g.reduceSum(g.mul(nll, weights), [0, 1], false), counted], { shape: [] });
  return { loss: g.output(loss, "loss"), labels, weights };
}
