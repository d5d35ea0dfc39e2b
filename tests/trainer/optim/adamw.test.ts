/**
 * AdamW + cosine warmup + global-norm clipping against a plain float64 transcription of the
 * algorithm boxes in the PyTorch docs (torch.optim.AdamW, torch.nn.utils.clip_grad_norm_) and of
 * transformers' get_cosine_schedule_with_warmup, over a run of steps on a quadratic loss.
 */
import { describe, expect, it } from "vitest";
import { AdamW, decodeAdamWState, encodeAdamWState } from "../../../trainer/optim/adamw.ts";
import { clipGradNorm } from "../../../trainer/optim/clip.ts";
import { cosineWithWarmup } from "../../../trainer/optim/schedule.ts";
import { seededRandom } from "../../helpers/prng.ts";

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
  warmup: number;
  total: number;
  maxNorm: number;
}

const HYPER: Hyper = { lr: 0.4, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.1, warmup: 3, total: 12, maxNorm: 5 };

/** ∇ of L(θ) = Σ_i ½·c_i·(θ_i − target_i)², the gradient the run feeds both optimizers. */
function quadraticGrad(theta: ArrayLike<number>, curvature: number[], target: number[]): number[] {
  return Array.from(theta, (t, i) => curvature[i]! * (t - target[i]!));
}

/** The reference: torch's algorithm box, float64, one flat parameter vector split into tensors. */
function referenceRun(theta0: number[], curvature: number[], target: number[], h: Hyper, steps: number): { theta: number[]; norms: number[] } {
  const theta = theta0.slice();
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  const norms: number[] = [];
  for (let t = 1; t <= steps; t++) {
    // get_cosine_schedule_with_warmup's lr_lambda at the scheduler's counter t - 1
    const s = t - 1;
    const factor = s < h.warmup ? s / Math.max(1, h.warmup) : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * ((s - h.warmup) / Math.max(1, h.total - h.warmup)))));
    const gamma = h.lr * factor;
    // clip_grad_norm_: total_norm over all grads, clip_coef = max_norm / (total_norm + 1e-6), clamped to 1
    let g = quadraticGrad(theta, curvature, target);
    const totalNorm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    norms.push(totalNorm);
    const clipCoef = Math.min(1, h.maxNorm / (totalNorm + 1e-6));
    g = g.map((x) => x * clipCoef);
    for (let i = 0; i < theta.length; i++) {
      theta[i] = theta[i]! - gamma * h.wd * theta[i]!; // θ_t ← θ_{t-1} − γλθ_{t-1}
      m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g[i]!; // m_t ← β1 m_{t-1} + (1 − β1) g_t
      v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g[i]! * g[i]!; // v_t ← β2 v_{t-1} + (1 − β2) g_t²
      const mHat = m[i]! / (1 - h.beta1 ** t);
      const vHat = v[i]! / (1 - h.beta2 ** t);
      theta[i] = theta[i]! - (gamma * mHat) / (Math.sqrt(vHat) + h.eps); // θ_t ← θ_t − γ m̂_t / (√v̂_t + ε)
    }
  }
  return { theta, norms };
}

/** Splits a flat vector into tensors of the given sizes. */
function split(flat: ArrayLike<number>, sizes: number[]): Float32Array[] {
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  return sizes.map((n, i) => Float32Array.from({ length: n }, (_, k) => flat[offsets[i]! + k]!));
}

const flatten = (tensors: Float32Array[]) => tensors.flatMap((t) => Array.from(t));

function problem(seed: number, n: number) {
  const random = seededRandom(seed);
  return {
    theta0: Array.from({ length: n }, () => Math.fround(random.next() * 4 - 2)),
    curvature: Array.from({ length: n }, () => 0.5 + random.next() * 3),
    target: Array.from({ length: n }, () => random.next() * 2 - 1),
  };
}

describe("AdamW (torch.optim.AdamW) with cosine warmup and clipping", () => {
  const sizes = [7, 12, 5];
  const n = sizes.reduce((a, b) => a + b, 0);

  it("follows the float64 reference over 12 steps with warmup, clipping and weight decay", () => {
    const { theta0, curvature, target } = problem(7, n);
    const expected = referenceRun(theta0, curvature, target, HYPER, HYPER.total);
    const params = split(theta0, sizes);
    const optimizer = new AdamW(sizes, { betas: [HYPER.beta1, HYPER.beta2], eps: HYPER.eps, weightDecay: HYPER.wd });
    const lr = cosineWithWarmup({ baseLr: HYPER.lr, warmupSteps: HYPER.warmup, totalSteps: HYPER.total });
    const norms: number[] = [];
    let clipped = 0;
    for (let s = 0; s < HYPER.total; s++) {
      const grads = split(quadraticGrad(flatten(params), curvature, target), sizes);
      const norm = clipGradNorm(grads, HYPER.maxNorm);
      if (norm > HYPER.maxNorm) clipped++;
      norms.push(norm);
      optimizer.update(params, grads, lr(s));
    }
    expect(optimizer.step).toBe(HYPER.total);
    expect(clipped, "clipping took part").toBeGreaterThan(2);
    expect(clipped, "and some steps were not clipped").toBeLessThan(HYPER.total);
    const got = flatten(params);
    for (let i = 0; i < n; i++) expect(Math.abs(got[i]! - expected.theta[i]!), `θ[${i}]`).toBeLessThan(2e-6);
    norms.forEach((x, i) => expect(Math.abs(x - expected.norms[i]!) / expected.norms[i]!, `norm ${i}`).toBeLessThan(1e-5));
    // the run moved the parameters well beyond the tolerance
    expect(Math.max(...got.map((x, i) => Math.abs(x - theta0[i]!)))).toBeGreaterThan(0.1);
  });

  it("first step: bias correction makes each update lr·sign(g) (no decay); with g = 0 only the decay acts", () => {
    const optimizer = new AdamW([4], { weightDecay: 0 });
    const p = new Float32Array([1, -1, 0.5, 2]);
    optimizer.update([p], [new Float32Array([3, -0.2, 1e-3, -50])], 0.01);
    expect(Array.from(p)).toEqual([1 - 0.01, -1 + 0.01, 0.5 - 0.01, 2 + 0.01].map((x, i) => expect.closeTo(x, i === 2 ? 6 : 7)));

    const decaying = new AdamW([3], { weightDecay: 0.1 });
    const q = new Float32Array([1, -2, 4]);
    decaying.update([q], [new Float32Array(3)], 0.5);
    expect(Array.from(q)).toEqual([0.95, -1.9, 3.8].map((x) => Math.fround(x)));
  });

  it("resumes from an exported (and safetensors-encoded) state exactly as if it had never stopped", () => {
    const { theta0, curvature, target } = problem(3, n);
    const run = (optimizer: AdamW, params: Float32Array[], from: number, to: number) => {
      for (let s = from; s < to; s++) optimizer.update(params, split(quadraticGrad(flatten(params), curvature, target), sizes), 0.02);
    };
    const straight = split(theta0, sizes);
    const a = new AdamW(sizes, { weightDecay: 0.05 });
    run(a, straight, 0, 6);

    const resumed = split(theta0, sizes);
    const b = new AdamW(sizes, { weightDecay: 0.05 });
    run(b, resumed, 0, 3);
    const { state, options } = decodeAdamWState(encodeAdamWState(b));
    expect(state.step).toBe(3);
    expect(options).toEqual({ betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 });
    const c = new AdamW(sizes, options, state);
    expect(c.hyper).toEqual(b.hyper);
    run(c, resumed, 3, 6);
    expect(flatten(resumed)).toEqual(flatten(straight));
    expect(c.exportState()).toEqual(a.exportState());
  });

  it("refuses gradients or states that do not match the parameters", () => {
    const optimizer = new AdamW([2, 3]);
    expect(() => optimizer.update([new Float32Array(2)], [new Float32Array(2)], 0.1)).toThrow(/holds 2 parameters/);
    expect(() => optimizer.update([new Float32Array(2), new Float32Array(3)], [new Float32Array(2), new Float32Array(4)], 0.1)).toThrow(/parameter 1/);
    expect(() => new AdamW([2], {}, { step: 1, m: [new Float32Array(3)], v: [new Float32Array(3)] })).toThrow(/does not match/);
  });
});
