/**
 * The masked causal-LM loss alone: its value against a float64 hand computation, its gradient
 * against the closed form (softmax − one-hot)·w / Σw and central finite differences, and Σw = 0.
 */
import { describe, expect, it } from "vitest";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import { Graph } from "../../../../services/model/graph/ir.ts";
import { appendCausalLmLoss } from "../../../../services/model/llama/loss.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { refTensor } from "../../../helpers/evaluate.ts";
import { finiteDifferences, runOrt } from "../../../helpers/gradients.ts";
import { randomArray } from "../../../helpers/tiny-model.ts";

const [B, T, V] = [2, 3, 5];
const LABELS = [3, 0, 4, -100, 1, 2]; // -100: ignored (weight 0)
const WEIGHTS = [0, 1, 1, 0, 1, 1];
const LOGITS = Array.from(randomArray(B * T * V, 9, 4), (v, i) => v + (i % V === 2 ? 30 : 0)); // large logits: stability

function graph() {
  const g = new Graph("loss");
  const logits = g.input("logits", "float32", [B, T, V]);
  const { loss } = appendCausalLmLoss(g, logits);
  const [grad] = appendGradients(g, loss, [logits]);
  return { g, loss, grad };
}

/** Per position: log-softmax, softmax (float64). */
function reference(weights: number[]): { loss: number; grad: Float64Array } {
  const grad = new Float64Array(B * T * V);
  const total = weights.reduce((a, b) => a + b, 0);
  let loss = 0;
  for (let p = 0; p < B * T; p++) {
    const row = LOGITS.slice(p * V, (p + 1) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    if (weights[p] === 0) continue;
    loss += (weights[p] * (lse - row[LABELS[p]])) / total;
    row.forEach((v, k) => (grad[p * V + k] = (weights[p] * (Math.exp(v - lse) - (k === LABELS[p] ? 1 : 0))) / total));
  }
  return { loss, grad };
}

const feeds = (weights: number[]) => ({
  logits: refTensor([B, T, V], LOGITS),
  labels: refTensor([B, T], LABELS),
  loss_weights: refTensor([B, T], weights),
});

describe("appendCausalLmLoss", () => {
  it("is the weighted mean token cross-entropy, and its gradient (softmax − one-hot)·w/Σw", async () => {
    const { g, loss, grad } = graph();
    const out = await runOrt(g, feeds(WEIGHTS), ["loss", grad.name]);
    const expected = reference(WEIGHTS);
    expectClose(out.loss, [expected.loss], 1e-5, "loss");
    expectClose(out[grad.name], expected.grad, 1e-6, "d loss / d logits");
    const fd = finiteDifferences(g, loss, feeds(WEIGHTS), "logits");
    expectClose(fd, expected.grad, 1e-8, "finite differences of the float64 reference");
    // masked positions get no gradient at all
    for (const p of [0, 3]) expect(Array.from(out[grad.name].subarray(p * V, (p + 1) * V))).toEqual(new Array(V).fill(0));
  });

  it("gives 0, not NaN, when no position is counted", async () => {
    const { g, grad } = graph();
    const out = await runOrt(g, feeds(new Array(B * T).fill(0)), ["loss", grad.name]);
    expect(Array.from(out.loss)).toEqual([0]);
    expect(out[grad.name].every((v) => v === 0)).toBe(true);
  });
});
