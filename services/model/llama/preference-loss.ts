/**
 * Preference losses over (chosen, rejected) row pairs of per-sequence log-probabilities
 * (./sequence-logprob.ts), DPO (Rafailov et al. 2023) and IPO (Azar et al. 2023) as TRL computes them:
 *
 *   rows 0..P-1 are the chosen answers, rows P..2P-1 the rejected answers of the same P prompts (B = 2P)
 *   ref_logps  float [B]   the reference policy's log-probabilities of the same rows (no gradient)
 *   beta       float [1]
 *   h = (π_c − π_r) − (ref_c − ref_r)
 *   sigmoid:  loss = mean_p −log σ(β·h)   (Log(Sigmoid): finite while β·h > −87 in float32; a relu/|z| form
 *             would be exact further out but has a zero gradient at h = 0, where every run starts: B = 0)
 *   ipo:      loss = mean_p (h − 1/(2β))²
 *   -> loss   float []
 *
 * Only elementwise ops, Reshape, Gather on axis 0 and reductions: every one has a backward rule.
 */
import type { Graph, Value } from "../graph/ir.ts";

export type PreferenceLossType = "sigmoid" | "ipo";

export interface PreferenceLoss {
  loss: Value;
  refLogps: Value;
  beta: Value;
}

/** Appends `ref_logps` and `beta` inputs and the mean preference loss over the pairs, output as "loss". */
export function appendPreferenceLoss(g: Graph, logps: Value, type: PreferenceLossType): PreferenceLoss {
  const refLogps = g.input("ref_logps", "float32", ["batch"]);
  const beta = g.input("beta", "float32", [1]);
  const pairs = g.reshape(g.sub(logps, refLogps), [2, -1]); // [2, P]: chosen row, rejected row
  const h = g.sub(g.gather(pairs, g.constInt64([0], [])), g.gather(pairs, g.constInt64([1], []))); // [P]
  const perPair = type === "ipo" ? ipo(g, h, beta) : sigmoid(g, h, beta);
  const loss = g.reduceMean(perPair, [0], false);
  return { loss: g.output(loss, "loss"), refLogps, beta };
}

function sigmoid(g: Graph, h: Value, beta: Value): Value {
  return g.neg(g.op1("Log", [g.sigmoid(g.mul(beta, h))]));
}

function ipo(g: Graph, h: Value, beta: Value): Value {
  const d = g.sub(h, g.div(g.constFloat([0.5], []), beta));
  return g.mul(d, d);
}
