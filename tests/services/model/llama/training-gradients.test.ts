/**
 * The whole training graph + masked loss on random tiny models: every LoRA A and B gradient (every
 * target module, every layer) from one onnxruntime session (forward + backward as one graph written
 * with writeOnnx, float32) against central finite differences of the float64 reference evaluator.
 *
 * Batch of 2 with left padding, a loss mask that excludes padding, prompt tokens and the last
 * position, random nonzero A and B (so both gradients are nonzero).
 * Tolerance, per LoRA tensor:
 *   - directional derivative along a random direction: |⟨g, d⟩ − FD| / |FD| < 1e-3;
 *   - single elements (the largest |g| and 3 random ones): |g − FD| / max(|FD|, floor) < 1e-3,
 *     floor = 1e-2 · max |g| of the tensor (smaller elements are compared at the floor's scale).
 * Measured: worst relative errors ≈ 1e-5 (float32 analytic vs float64 FD), two orders below the tolerance.
 * Mutation tried: the Softmax rule without its Σ dy·y term fails both models here (lora.0.q_proj.a,
 * directional error 6.9 and 0.32); tests/services/model/graph/backward-rules.test.ts keeps such
 * mutations as tests ("the checks can fail").
 */
import { describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../../../services/model/config.ts";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import { appendCausalLmLoss } from "../../../../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../../../../services/model/llama/training-graph.ts";
import { LORA_TARGETS } from "../../../../services/model/lora-layout.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { refTensor, type RefTensor } from "../../../helpers/evaluate.ts";
import { directionalDifference, finiteDifferences, maxOf, referenceLoss, relativeErrors, runOrt } from "../../../helpers/gradients.ts";
import { seededRandom } from "../../../helpers/prng.ts";
import { randomArray, randomWeights, TINY_VARIANTS } from "../../../helpers/tiny-model.ts";

const RANK = 2;
const TOLERANCE = 1e-3;
const FLOOR = 1e-2;

// Two left-padded sequences; prompt = the first 3 (row 0) and 2 (row 1) real tokens.
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
const PROMPT_END = [3, 4]; // first completion column of each row
const T = TOKENS[0].length;
// Position t predicts token t + 1; counted only when that token is a completion token.
const LABELS = TOKENS.map((row) => row.map((_, t) => (t + 1 < T ? row[t + 1] : -100)));
const WEIGHTS = TOKENS.map((_, r) => Array.from({ length: T }, (_, t) => (t + 1 >= PROMPT_END[r] && t + 1 < T ? 1 : 0)));

describe.each([
  ["llama GQA (6 heads, 2 kv heads), untied", TINY_VARIANTS["llama untied GQA, odd sizes"]],
  ["qwen2 q/k/v biases, GQA", TINY_VARIANTS["qwen2 with q/k/v biases and explicit head_dim"]],
])("LoRA gradients of the training graph + loss (%s)", (_, config: DecoderConfig) => {
  it("match central finite differences of the float64 reference for every A and B", async () => {
    expect(config.numKvHeads).toBeLessThan(config.numHeads);
    expect(config.numLayers).toBeGreaterThanOrEqual(2);
    const g = buildTrainingGraph(config, randomWeights(config, 11));
    const { loss } = appendCausalLmLoss(g, g.outputs.find((v) => v.name === "logits")!);
    const lora = g.inputs.filter((v) => v.name.startsWith("lora."));
    expect(lora.length).toBe(2 * LORA_TARGETS.length * config.numLayers);
    const grads = appendGradients(g, loss, lora);

    const feeds: Record<string, RefTensor> = {
      input_ids: refTensor([2, T], TOKENS.flat()),
      position_ids: refTensor([2, T], POSITIONS.flat()),
      attention_mask: refTensor([2, T], MASK.flat()),
      labels: refTensor([2, T], LABELS.flat()),
      loss_weights: refTensor([2, T], WEIGHTS.flat()),
    };
    lora.forEach((v, k) => {
      const shape = v.shape!.map((d) => (d === "lora_rank" ? RANK : (d as number)));
      feeds[v.name] = refTensor(shape, randomArray(shape[0] * shape[1], 300 + k, 0.5));
    });

    const out = await runOrt(g, feeds, ["loss", ...grads.map((v) => v.name)]);
    expectClose(out.loss, [referenceLoss(g, loss, feeds)], 1e-5, "loss: onnxruntime vs float64 reference");

    const random = seededRandom(7);
    let worstDirectional = 0;
    let worstElement = 0;
    lora.forEach((v, k) => {
      const analytic = out[grads[k].name];
      expect(analytic.length).toBe(feeds[v.name].data.length);
      const scale = maxOf(analytic);
      expect(scale, `${v.name}: gradient is nonzero`).toBeGreaterThan(1e-6);

      const direction = Float64Array.from(randomArray(analytic.length, 900 + k, 1));
      const fd = directionalDifference(g, loss, feeds, v.name, direction);
      const dot = analytic.reduce((s, a, i) => s + a * direction[i], 0);
      const directional = Math.abs(dot - fd) / Math.abs(fd);
      worstDirectional = Math.max(worstDirectional, directional);
      expect(directional, `${v.name}: directional derivative ${dot} vs FD ${fd}`).toBeLessThan(TOLERANCE);

      const largest = analytic.reduce((best, a, i) => (Math.abs(a) > Math.abs(analytic[best]) ? i : best), 0);
      const indices = [largest, ...Array.from({ length: 3 }, () => random.int(0, analytic.length - 1))];
      const elementFd = finiteDifferences(g, loss, feeds, v.name, indices);
      const errors = relativeErrors(indices.map((i) => analytic[i]), elementFd, FLOOR * scale);
      worstElement = Math.max(worstElement, maxOf(errors));
      expectClose(errors, new Float64Array(errors.length), TOLERANCE, `${v.name}: relative error at elements [${indices}]`);
    });
    console.log(`${config.architecture}: ${lora.length} LoRA tensors; worst relative error: directional ${worstDirectional.toExponential(2)}, elementwise ${worstElement.toExponential(2)}`);
  });
});
