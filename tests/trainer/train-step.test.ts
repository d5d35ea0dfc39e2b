/**
 * Two optimizer steps of the trainer's machinery (trainer/step-graph.ts session: forward + backward in
 * onnxruntime float32; trainer/train.ts `trainStep`: gradient accumulation over two micro-batches of
 * different padding, clipping, AdamW with weight decay, cosine schedule) against a plain reference
 * written here in float64 and sharing none of that code:
 *   - loss: the float64 evaluator (tests/helpers/evaluate.ts) on ONE batch holding all three examples
 *     (so padding and accumulation must not change the mean loss);
 *   - gradients: central finite differences of that loss in PEFT's layout (A [r, in], B [out, r]),
 *     each perturbed element converted to the graph's a = Aᵀ, b = (s·B)ᵀ here;
 *   - update: torch's clip_grad_norm_ and AdamW formulas and HF's cosine schedule, in float64.
 * Tolerances: loss |Δ|/loss < 1e-5; grad norm (pre-clip) relative < 1e-4; parameters after two steps
 * |Δ| < 1e-3·lr (the step size is ~lr per element, so this is 0.1% of one update).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../services/model/config.ts";
import { appendCausalLmLoss } from "../../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../../services/model/llama/training-graph.ts";
import { LORA_TARGETS, loraInputName, projectionShape } from "../../services/model/lora-layout.ts";
import { makeBatch, type Batch, type EncodedExample } from "../../trainer/dataset.ts";
import { parameters } from "../../trainer/lora-params.ts";
import { openStepRunner, type StepRunner } from "../../trainer/step-graph.ts";
import { createTrainState, resolveHyperparameters, trainStep } from "../../trainer/train.ts";
import { evaluate, refTensor, type RefTensor } from "../helpers/evaluate.ts";
import { seededRandom } from "../helpers/prng.ts";
import { randomWeights, tinyConfig } from "../helpers/tiny-model.ts";

const CONFIG: DecoderConfig = tinyConfig({ hiddenSize: 16, intermediateSize: 20, numHeads: 4, numKvHeads: 2, headDim: 4, vocabSize: 31 });
const H = resolveHyperparameters({ rank: 2, alpha: 3, targetModules: ["q_proj", "v_proj", "down_proj"], learningRate: 0.05, weightDecay: 0.1, warmupRatio: 0, maxGradNorm: 0.05 });
const TOTAL_STEPS = 4;
const STEPS = 2;

function example(random: ReturnType<typeof seededRandom>, length: number, promptLength: number): EncodedExample {
  const ids = [1, ...Array.from({ length: length - 1 }, () => random.int(3, CONFIG.vocabSize - 1))];
  return { ids, weights: ids.map((_, t) => (t >= promptLength ? 1 : 0)), truncated: false };
}

interface RefModule {
  layer: number;
  target: (typeof LORA_TARGETS)[number];
  inF: number;
  outF: number;
  a: Float64Array; // [r, in]
  b: Float64Array; // [out, r]
}

describe("one training step equals a plain float64 reference step (tiny random model)", () => {
  let dir: string;
  let runner: StepRunner | undefined;
  afterAll(async () => {
    await runner?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("gives the reference's loss, gradient norm and updated A/B after two steps with accumulation", async () => {
    dir = await mkdtemp(join(tmpdir(), "sy-train-step-"));
    const weights = Object.assign(randomWeights(CONFIG, 5), { identity: "tiny-5" });
    runner = await openStepRunner({ config: CONFIG, weights, targets: H.targetModules, cacheDir: dir, threads: 1 });
    const random = seededRandom(9);
    const examples = [example(random, 9, 4), example(random, 6, 3), example(random, 8, 5)];
    const micro: Batch[] = [makeBatch(examples.slice(0, 2), 0), makeBatch(examples.slice(2), 0)];
    const whole = makeBatch(examples, 0);

    const state = createTrainState(CONFIG, H, 3, TOTAL_STEPS);
    // B starts at 0 (PEFT), which zeroes every ∂L/∂A: move B so both gradients are exercised.
    for (const m of state.params.modules) for (let k = 0; k < m.b.length; k++) m.b[k] = (random.next() - 0.5) * 0.6;
    const ref: RefModule[] = state.params.modules.map((m) => ({ layer: m.layer, target: m.target, inF: m.inFeatures, outF: m.outFeatures, a: Float64Array.from(m.a), b: Float64Array.from(m.b) }));

    const g = buildTrainingGraph(CONFIG, weights);
    const { loss } = appendCausalLmLoss(g, g.outputs.find((v) => v.name === "logits")!);
    const r = H.rank;
    const s = H.alpha / r;
    const batchFeeds: Record<string, RefTensor> = {
      input_ids: refTensor([whole.batch, whole.seq], whole.inputIds),
      position_ids: refTensor([whole.batch, whole.seq], whole.positionIds),
      attention_mask: refTensor([whole.batch, whole.seq], whole.attentionMask),
      labels: refTensor([whole.batch, whole.seq], whole.labels),
      loss_weights: refTensor([whole.batch, whole.seq], whole.lossWeights),
    };
    const refLoss = (modules: RefModule[]) => {
      const feeds = { ...batchFeeds };
      for (let layer = 0; layer < CONFIG.numLayers; layer++) {
        for (const target of LORA_TARGETS) {
          const { in: inF, out: outF } = projectionShape(CONFIG, target);
          feeds[loraInputName(layer, target, "a")] = refTensor([inF, r], new Float64Array(inF * r));
          feeds[loraInputName(layer, target, "b")] = refTensor([r, outF], new Float64Array(r * outF));
        }
      }
      for (const m of modules) {
        const a = new Float64Array(m.inF * r);
        const b = new Float64Array(r * m.outF);
        for (let j = 0; j < r; j++) for (let i = 0; i < m.inF; i++) a[i * r + j] = m.a[j * m.inF + i]!;
        for (let o = 0; o < m.outF; o++) for (let j = 0; j < r; j++) b[j * m.outF + o] = s * m.b[o * r + j]!;
        feeds[loraInputName(m.layer, m.target, "a")] = { shape: [m.inF, r], data: a };
        feeds[loraInputName(m.layer, m.target, "b")] = { shape: [r, m.outF], data: b };
      }
      return evaluate(g, feeds, [loss])[0]!.data[0]!;
    };
    const refGradients = (modules: RefModule[], h = 1e-5): Float64Array[] =>
      modules.flatMap((m) =>
        [m.a, m.b].map((p) =>
          Float64Array.from(p, (value, k) => {
            p[k] = value + h;
            const up = refLoss(modules);
            p[k] = value - h;
            const down = refLoss(modules);
            p[k] = value;
            return (up - down) / (2 * h);
          }),
        ),
      );

    const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
    const moments = ref.flatMap((m) => [m.a, m.b]).map((p) => ({ m: new Float64Array(p.length), v: new Float64Array(p.length) }));
    for (let t = 1; t <= STEPS; t++) {
      const got = await trainStep(runner, state, micro, H.maxGradNorm);

      const want = refLoss(ref);
      const grads = refGradients(ref);
      const norm = Math.sqrt(grads.reduce((sum, gr) => sum + gr.reduce((x, v) => x + v * v, 0), 0));
      const coef = Math.min(1, H.maxGradNorm / (norm + 1e-6));
      const lr = H.learningRate * 0.5 * (1 + Math.cos((Math.PI * (t - 1)) / TOTAL_STEPS));
      ref.flatMap((m) => [m.a, m.b]).forEach((p, i) => {
        const { m, v } = moments[i]!;
        for (let k = 0; k < p.length; k++) {
          const gk = grads[i]![k]! * coef;
          p[k] = p[k]! * (1 - lr * H.weightDecay);
          m[k] = beta1 * m[k]! + (1 - beta1) * gk;
          v[k] = beta2 * v[k]! + (1 - beta2) * gk * gk;
          p[k] = p[k]! - (lr * (m[k]! / (1 - beta1 ** t))) / (Math.sqrt(v[k]! / (1 - beta2 ** t)) + eps);
        }
      });

      const lossError = Math.abs(got.loss - want) / want;
      const normError = Math.abs(got.gradNorm - norm) / norm;
      expect(coef, "clipping is active").toBeLessThan(1);
      expect(got.learningRate).toBeCloseTo(lr, 12);
      expect(lossError, `step ${t}: loss ${got.loss} vs ${want}`).toBeLessThan(1e-5);
      expect(normError, `step ${t}: grad norm ${got.gradNorm} vs ${norm}`).toBeLessThan(1e-4);
      const trained = parameters(state.params);
      const worst = ref.flatMap((m) => [m.a, m.b]).reduce((w, p, i) => p.reduce((x, v, k) => Math.max(x, Math.abs(v - trained[i]![k]!)), w), 0);
      console.log(`step ${t}: loss ${got.loss.toFixed(6)} (ref ${want.toFixed(6)}, rel err ${lossError.toExponential(2)}), grad norm rel err ${normError.toExponential(2)}, max |ΔA/B| ${worst.toExponential(2)} (lr ${lr.toExponential(2)})`);
      expect(worst, `step ${t}: largest |A/B - reference|`).toBeLessThan(1e-3 * lr);
    }
  }, 120_000);
});
