/**
 * Prompt tuning by the same reverse-mode pass: the gradient of the masked causal-LM loss w.r.t. the
 * training graph's `virtual_embeddings` (the prompt being trained) from one onnxruntime session,
 * against central finite differences of the float64 reference evaluator, on random tiny models.
 *
 * Two rows, the second left-padded; each starts with the 3 virtual tokens (ids vocab + k) at
 * positions 0..2, as PEFT numbers them; the loss counts only completion tokens, never a virtual one.
 * LoRA inputs are fed zeros: the prompt alone is trained. Tolerances as training-gradients.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../../../services/model/config.ts";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import { appendCausalLmLoss } from "../../../../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../../../../services/model/llama/training-graph.ts";
import { VIRTUAL_EMBEDDINGS_INPUT } from "../../../../services/model/prompt-tuning.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { refTensor, type RefTensor } from "../../../helpers/evaluate.ts";
import { directionalDifference, finiteDifferences, maxOf, referenceLoss, relativeErrors, runOrt } from "../../../helpers/gradients.ts";
import { seededRandom } from "../../../helpers/prng.ts";
import { randomArray, randomWeights, TINY_VARIANTS } from "../../../helpers/tiny-model.ts";

const N = 3;
const TOLERANCE = 1e-3;
const FLOOR = 1e-2;

describe.each([
  ["llama GQA (6 heads, 2 kv heads), untied", TINY_VARIANTS["llama untied GQA, odd sizes"]],
  ["qwen2 q/k/v biases, GQA", TINY_VARIANTS["qwen2 with q/k/v biases and explicit head_dim"]],
])("prompt-tuning gradient of the training graph + loss (%s)", (_, config: DecoderConfig) => {
  it("matches central finite differences of the float64 reference", async () => {
    const V = config.vocabSize;
    const tokens = [
      [V, V + 1, V + 2, 1, 5, 17, 9, 3],
      [0, 0, V, V + 1, V + 2, 1, 33, 2],
    ];
    const mask = [
      [1, 1, 1, 1, 1, 1, 1, 1],
      [0, 0, 1, 1, 1, 1, 1, 1],
    ];
    const positions = [
      [0, 1, 2, 3, 4, 5, 6, 7],
      [0, 0, 0, 1, 2, 3, 4, 5],
    ];
    const completionFrom = [5, 6]; // first completion column of each row (after virtual tokens and a 2 / 1-token prompt)
    const T = tokens[0]!.length;
    const labels = tokens.map((row) => row.map((_, t) => (t + 1 < T ? row[t + 1]! : -100)));
    const weights = tokens.map((_, r) => Array.from({ length: T }, (_, t) => (t + 1 >= completionFrom[r]! && t + 1 < T ? 1 : 0)));

    const g = buildTrainingGraph(config, randomWeights(config, 11), { virtualTokens: true });
    const { loss } = appendCausalLmLoss(g, g.outputs.find((v) => v.name === "logits")!);
    const virtual = g.inputs.find((v) => v.name === VIRTUAL_EMBEDDINGS_INPUT)!;
    const [grad] = appendGradients(g, loss, [virtual]);

    const feeds: Record<string, RefTensor> = {
      input_ids: refTensor([2, T], tokens.flat()),
      position_ids: refTensor([2, T], positions.flat()),
      attention_mask: refTensor([2, T], mask.flat()),
      labels: refTensor([2, T], labels.flat()),
      loss_weights: refTensor([2, T], weights.flat()),
      [virtual.name]: refTensor([N, config.hiddenSize], randomArray(N * config.hiddenSize, 77, 1)),
    };
    for (const v of g.inputs.filter((i) => i.name.startsWith("lora."))) {
      const shape = v.shape!.map((d) => (d === "lora_rank" ? 1 : (d as number)));
      feeds[v.name] = refTensor(shape, new Float32Array(shape[0]! * shape[1]!));
    }

    const out = await runOrt(g, feeds, ["loss", grad!.name]);
    expectClose(out.loss!, [referenceLoss(g, loss, feeds)], 1e-5, "loss: onnxruntime vs float64 reference");
    const analytic = out[grad!.name]!;
    expect(analytic.length).toBe(N * config.hiddenSize);
    const scale = maxOf(analytic);
    expect(scale, "gradient is nonzero").toBeGreaterThan(1e-6);

    const direction = Float64Array.from(randomArray(analytic.length, 901, 1));
    const fd = directionalDifference(g, loss, feeds, virtual.name, direction);
    const dot = analytic.reduce((s, a, i) => s + a * direction[i]!, 0);
    expect(Math.abs(dot - fd) / Math.abs(fd), `directional derivative ${dot} vs FD ${fd}`).toBeLessThan(TOLERANCE);

    const random = seededRandom(7);
    const largest = analytic.reduce((best, a, i) => (Math.abs(a) > Math.abs(analytic[best]!) ? i : best), 0);
    const indices = [largest, ...Array.from({ length: 4 }, () => random.int(0, analytic.length - 1))];
    const errors = relativeErrors(indices.map((i) => analytic[i]!), finiteDifferences(g, loss, feeds, virtual.name, indices), FLOOR * scale);
    expectClose(errors, new Float64Array(errors.length), TOLERANCE, `relative error at elements [${indices}]`);
  });
});
