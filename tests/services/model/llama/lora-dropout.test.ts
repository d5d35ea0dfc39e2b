/**
 * LoRA dropout in the training graph (PEFT: lora_B(lora_A(dropout(x))) · scaling): a mask input per
 * adapted target multiplies that branch's input only. Checked on a random tiny GQA model:
 *   - without dropout targets the graph has no mask input and the same nodes as before;
 *   - a mask of ones is the graph without dropout; a zero mask on q_proj is q_proj's branch removed
 *     (the base projection, and the other targets sharing q's input, unaffected);
 *   - with a fixed random mask (p = 0.5: elements 0 or 2), every LoRA gradient equals central finite
 *     differences of the float64 reference (tolerance as training-gradients.test.ts: 1e-3 relative).
 */
import { describe, expect, it } from "vitest";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import type { Graph } from "../../../../services/model/graph/ir.ts";
import { appendCausalLmLoss } from "../../../../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../../../../services/model/llama/training-graph.ts";
import { LORA_TARGETS } from "../../../../services/model/lora-layout.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { evaluate, refTensor, type RefTensor } from "../../../helpers/evaluate.ts";
import { directionalDifference, maxOf, referenceLoss, runOrt } from "../../../helpers/gradients.ts";
import { randomArray, randomWeights, TINY_VARIANTS } from "../../../helpers/tiny-model.ts";

const config = TINY_VARIANTS["llama untied GQA, odd sizes"];
const weights = randomWeights(config, 11);
const RANK = 2;
const TOKENS = [
  [1, 5, 17, 42, 9, 3],
  [0, 0, 1, 33, 7, 2],
];
const MASK = [
  [1, 1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1, 1],
];
const POSITIONS = [
  [0, 1, 2, 3, 4, 5],
  [0, 0, 0, 1, 2, 3],
];
const T = TOKENS[0].length;
const LABELS = TOKENS.map((row) => row.map((_, t) => (t + 1 < T ? row[t + 1] : -100)));
const WEIGHTS = TOKENS.map((_, r) => Array.from({ length: T }, (_, t) => (t + 1 >= 3 + r && t + 1 < T ? 1 : 0)));

/** Batch feeds and random A/B for every LoRA input of `g`; masks by `mask(name, size)`. */
function feedsFor(g: Graph, mask: (name: string, size: number) => ArrayLike<number>): Record<string, RefTensor> {
  const feeds: Record<string, RefTensor> = {
    input_ids: refTensor([2, T], TOKENS.flat()),
    position_ids: refTensor([2, T], POSITIONS.flat()),
    attention_mask: refTensor([2, T], MASK.flat()),
    labels: refTensor([2, T], LABELS.flat()),
    loss_weights: refTensor([2, T], WEIGHTS.flat()),
  };
  g.inputs.forEach((v, k) => {
    if (!v.name.startsWith("lora.")) return;
    const shape = v.shape!.map((d) => (d === "lora_rank" ? RANK : d === "batch" ? 2 : d === "seq" ? T : (d as number)));
    const size = shape.reduce((a, b) => a * b, 1);
    feeds[v.name] = refTensor(shape, v.name.endsWith(".dropout") ? mask(v.name, size) : randomArray(size, 300 + k, 0.5));
  });
  return feeds;
}

const logits = (g: Graph, feeds: Record<string, RefTensor>) => evaluate(g, feeds, [g.outputs.find((v) => v.name === "logits")!])[0].data;

describe("LoRA dropout in the training graph", () => {
  it("adds one mask input per dropout target and layer, and nothing without dropout targets", () => {
    const plain = buildTrainingGraph(config, weights);
    const none = buildTrainingGraph(config, weights, { dropoutTargets: [] });
    const masked = buildTrainingGraph(config, weights, { dropoutTargets: ["q_proj", "down_proj"] });
    expect(plain.inputs.some((v) => v.name.endsWith(".dropout"))).toBe(false);
    expect(none.inputs.map((v) => v.name)).toEqual(plain.inputs.map((v) => v.name));
    expect(none.nodes.map((n) => n.op)).toEqual(plain.nodes.map((n) => n.op));
    const masks = masked.inputs.filter((v) => v.name.endsWith(".dropout"));
    expect(masks.map((v) => v.name)).toEqual(Array.from({ length: config.numLayers }, (_, i) => [`lora.${i}.q_proj.dropout`, `lora.${i}.down_proj.dropout`]).flat());
    expect(masks[1]!.shape).toEqual(["batch", "seq", config.intermediateSize]);
    expect(masked.nodes.length - plain.nodes.length).toBe(masks.length); // one Mul each
  });

  it("acts on the LoRA branch only: ones = no dropout; a zero q_proj mask = q_proj's adapter removed", () => {
    const plain = buildTrainingGraph(config, weights);
    const masked = buildTrainingGraph(config, weights, { dropoutTargets: [...LORA_TARGETS] });
    const ones = feedsFor(masked, (_, n) => new Float64Array(n).fill(1));
    const undropped = logits(plain, ones);
    expectClose(logits(masked, ones), undropped, 1e-12, "mask of ones");
    const qDropped = feedsFor(masked, (name, n) => new Float64Array(n).fill(name.includes(".q_proj.") ? 0 : 1));
    const qRemoved = { ...ones };
    for (let i = 0; i < config.numLayers; i++) qRemoved[`lora.${i}.q_proj.a`] = refTensor(ones[`lora.${i}.q_proj.a`]!.shape, new Float64Array(ones[`lora.${i}.q_proj.a`]!.data.length));
    const dropped = logits(masked, qDropped);
    expectClose(dropped, logits(plain, qRemoved), 1e-9, "q_proj's branch dropped");
    expect(maxOf(dropped.map((v, i) => v - undropped[i]!))).toBeGreaterThan(1e-4); // and that is a change
  });

  it("gradients with a fixed mask match central finite differences of the float64 reference", async () => {
    const g = buildTrainingGraph(config, weights, { dropoutTargets: [...LORA_TARGETS] });
    const { loss } = appendCausalLmLoss(g, g.outputs.find((v) => v.name === "logits")!);
    const lora = g.inputs.filter((v) => v.name.startsWith("lora.") && !v.name.endsWith(".dropout"));
    expect(lora.length).toBe(2 * LORA_TARGETS.length * config.numLayers);
    const grads = appendGradients(g, loss, lora);
    const feeds = feedsFor(g, (name, n) => Array.from(randomArray(n, name.length * 7 + n, 1), (u) => (u < 0 ? 0 : 2)));
    const out = await runOrt(g, feeds, ["loss", ...grads.map((v) => v.name)]);
    expectClose(out.loss!, [referenceLoss(g, loss, feeds)], 1e-5, "loss");
    let worst = 0;
    lora.forEach((v, k) => {
      const analytic = out[grads[k]!.name]!;
      expect(maxOf(analytic), `${v.name}: gradient is nonzero`).toBeGreaterThan(1e-6);
      const direction = Float64Array.from(randomArray(analytic.length, 900 + k, 1));
      const fd = directionalDifference(g, loss, feeds, v.name, direction);
      const dot = analytic.reduce((s, a, i) => s + a * direction[i]!, 0);
      const error = Math.abs(dot - fd) / Math.abs(fd);
      worst = Math.max(worst, error);
      expect(error, `${v.name}: directional derivative ${dot} vs FD ${fd}`).toBeLessThan(1e-3);
    });
    console.log(`LoRA dropout: ${lora.length} tensors, worst directional relative error ${worst.toExponential(2)}`);
  });
});
