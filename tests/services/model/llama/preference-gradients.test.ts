/**
 * The DPO / IPO loss over the training graph's per-sequence log-probabilities on a random tiny model:
 * its value against a float64 hand computation from the reference evaluator's logits, every LoRA A and
 * B gradient (every target, every layer) from one onnxruntime session against central finite
 * differences of the float64 evaluator, and the sequence log-probabilities with the adapter off (the
 * DPO reference policy) against the same hand computation.
 *
 * Two pairs (B = 4: rows 0-1 chosen, 2-3 rejected), left padding, answer masks after a shared prompt.
 * Tolerances as training-gradients.test.ts: directional derivative 1e-3 relative, the largest element
 * 1e-3 relative at a floor of 1e-2·max|g|.
 */
import { describe, expect, it } from "vitest";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import { appendPreferenceLoss, type PreferenceLossType } from "../../../../services/model/llama/preference-loss.ts";
import { appendSequenceLogProbs } from "../../../../services/model/llama/sequence-logprob.ts";
import { buildTrainingGraph } from "../../../../services/model/llama/training-graph.ts";
import { LORA_TARGETS } from "../../../../services/model/lora-layout.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { evaluate, refTensor, type RefTensor } from "../../../helpers/evaluate.ts";
import { directionalDifference, finiteDifferences, maxOf, referenceLoss, relativeErrors, runOrt } from "../../../helpers/gradients.ts";
import { randomArray, randomWeights, TINY_VARIANTS } from "../../../helpers/tiny-model.ts";

const RANK = 2;
const TOLERANCE = 1e-3;
const BETA = 0.7;
const config = TINY_VARIANTS["llama untied GQA, odd sizes"];

// Prompt [1, 5, 17] / [1, 33]; chosen and rejected answers after it.
const TOKENS = [
  [1, 5, 17, 42, 9, 3],
  [0, 0, 1, 33, 7, 2],
  [0, 1, 5, 17, 8, 4],
  [0, 0, 1, 33, 11, 6],
];
const PROMPT_END = [3, 3, 4, 3]; // first answer column of each row
const T = TOKENS[0].length;
const MASK = TOKENS.map((row, r) => row.map((_, t) => (t >= T - realLength(r) ? 1 : 0)));
const POSITIONS = TOKENS.map((row, r) => row.map((_, t) => Math.max(0, t - (T - realLength(r)))));
const LABELS = TOKENS.map((row) => row.map((_, t) => (t + 1 < T ? row[t + 1] : -100)));
const WEIGHTS = TOKENS.map((_, r) => Array.from({ length: T }, (_, t) => (t + 1 >= PROMPT_END[r] && t + 1 < T ? 1 : 0)));
const REF = [-9.5, -7.25, -8.75, -8.0];

function realLength(r: number): number {
  return TOKENS[r].filter((_, t) => t >= TOKENS[r].findIndex((x) => x !== 0)).length;
}

function build(type: PreferenceLossType) {
  const g = buildTrainingGraph(config, randomWeights(config, 11));
  const logits = g.outputs.find((v) => v.name === "logits")!;
  const { logps } = appendSequenceLogProbs(g, logits);
  const { loss } = appendPreferenceLoss(g, logps, type);
  const lora = g.inputs.filter((v) => v.name.startsWith("lora."));
  const grads = appendGradients(g, loss, lora);
  return { g, logits, logps, loss, lora, grads };
}

/** LoRA inputs random (`zeroB`: b = 0, as PEFT's init and the DPO reference: the adapter is off). */
function feedsFor(lora: { name: string; shape?: (string | number)[] }[], zeroB: boolean): Record<string, RefTensor> {
  const feeds: Record<string, RefTensor> = {
    input_ids: refTensor([4, T], TOKENS.flat()),
    position_ids: refTensor([4, T], POSITIONS.flat()),
    attention_mask: refTensor([4, T], MASK.flat()),
    labels: refTensor([4, T], LABELS.flat().map((l) => Math.max(l, 0))),
    loss_weights: refTensor([4, T], WEIGHTS.flat()),
    ref_logps: refTensor([4], REF),
    beta: refTensor([1], [BETA]),
  };
  lora.forEach((v, k) => {
    const shape = v.shape!.map((d) => (d === "lora_rank" ? RANK : (d as number)));
    feeds[v.name] = refTensor(shape, zeroB && v.name.endsWith(".b") ? new Float32Array(shape[0]! * shape[1]!) : randomArray(shape[0]! * shape[1]!, 300 + k, 0.5));
  });
  return feeds;
}

/** Σ_t w · log softmax(logits)[label] per row, by hand in float64. */
function handLogps(logits: RefTensor): number[] {
  const V = logits.shape[2]!;
  return TOKENS.map((_, r) => {
    let sum = 0;
    for (let t = 0; t < T; t++) {
      if (WEIGHTS[r][t] === 0) continue;
      const row = Array.from(logits.data.subarray((r * T + t) * V, (r * T + t + 1) * V));
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      sum += row[LABELS[r][t]]! - lse;
    }
    return sum;
  });
}

function handLoss(pi: number[], type: PreferenceLossType): number {
  const h = [0, 1].map((p) => pi[p]! - pi[p + 2]! - (REF[p]! - REF[p + 2]!));
  const per = h.map((x) => (type === "ipo" ? (x - 1 / (2 * BETA)) ** 2 : Math.log1p(Math.exp(-BETA * x))));
  return (per[0]! + per[1]!) / 2;
}

describe.each(["sigmoid", "ipo"] as const)("the %s preference loss over the training graph", (type) => {
  it("has the hand-computed value and every LoRA gradient matches central finite differences", async () => {
    const { g, logits, logps, loss, lora, grads } = build(type);
    expect(lora.length).toBe(2 * LORA_TARGETS.length * config.numLayers);
    const feeds = feedsFor(lora, false);
    const out = await runOrt(g, feeds, ["loss", "logps", ...grads.map((v) => v.name)]);
    const [refLogits] = evaluate(g, feeds, [logits]);
    const pi = handLogps(refLogits!);
    expectClose(out.logps!, pi, 1e-4, "logps: onnxruntime vs hand computation");
    expectClose(out.loss!, [handLoss(pi, type)], 1e-5, "loss: onnxruntime vs hand computation");
    expectClose([referenceLoss(g, loss, feeds)], [handLoss(pi, type)], 1e-9, "loss: float64 evaluator vs hand computation");
    expect(logps.name).toBe("logps");

    let worst = 0;
    lora.forEach((v, k) => {
      const analytic = out[grads[k]!.name]!;
      const scale = maxOf(analytic);
      expect(scale, `${v.name}: gradient is nonzero`).toBeGreaterThan(1e-7);
      const direction = Float64Array.from(randomArray(analytic.length, 900 + k, 1));
      const fd = directionalDifference(g, loss, feeds, v.name, direction);
      const dot = analytic.reduce((s, a, i) => s + a * direction[i]!, 0);
      const directional = Math.abs(dot - fd) / Math.abs(fd);
      worst = Math.max(worst, directional);
      expect(directional, `${v.name}: directional derivative ${dot} vs FD ${fd}`).toBeLessThan(TOLERANCE);
      const largest = analytic.reduce((best, a, i) => (Math.abs(a) > Math.abs(analytic[best]!) ? i : best), 0);
      const errors = relativeErrors([analytic[largest]!], finiteDifferences(g, loss, feeds, v.name, [largest]), 1e-2 * scale);
      expect(maxOf(errors), `${v.name}[${largest}]`).toBeLessThan(TOLERANCE);
    });
    console.log(`${type}: ${lora.length} LoRA tensors, worst directional relative error ${worst.toExponential(2)}`);
  });
});

describe("the reference policy (adapter off)", () => {
  it("gives the base model's sequence log-probabilities, and at policy = reference the sigmoid loss is log 2 with a nonzero gradient", async () => {
    const { g, logits, lora, grads } = build("sigmoid");
    const feeds = feedsFor(lora, true);
    const base = buildTrainingGraph(config, randomWeights(config, 11)); // no LoRA product at all: the base model
    const [baseLogits] = evaluate(base, Object.fromEntries(Object.entries(feeds).filter(([k]) => base.inputs.some((v) => v.name === k))), [base.outputs.find((v) => v.name === "logits")!]);
    const expected = handLogps(baseLogits!);
    const out = await runOrt(g, { ...feeds, ref_logps: refTensor([4], expected) }, ["loss", "logps", ...grads.map((v) => v.name)]);
    expectClose(out.logps!, expected, 1e-4, "logps with B = 0 vs the base model's");
    expectClose(out.loss!, [Math.log(2)], 1e-5, "loss at h = 0");
    expect(evaluate(g, feeds, [logits])[0]!.data.length).toBe(baseLogits!.data.length);
    // At B = 0 the b gradients must be nonzero, or DPO could never leave the reference.
    expect(lora.filter((v) => v.name.endsWith(".b")).some((v) => maxOf(out[grads[lora.indexOf(v)]!.name]!) > 1e-8)).toBe(true);
  });
});
