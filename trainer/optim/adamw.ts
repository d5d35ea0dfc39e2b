/**
 * AdamW with decoupled weight decay, as torch.optim.AdamW (amsgrad=False, maximize=False). For step
 * t = 1, 2, ... with learning rate γ_t (from the schedule), for every parameter θ and its gradient g:
 *   θ ← θ − γ_t·λ·θ                              decoupled weight decay (before the Adam update)
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   m̂ = m / (1 − β1^t),   v̂ = v / (1 − β2^t)      bias correction
 *   θ ← θ − γ_t·m̂ / (√v̂ + ε)                     ε outside the square root
 * Defaults are torch's: β = (0.9, 0.999), ε = 1e-8, λ = 0.01 (Hugging Face's Trainer defaults λ to 0).
 *
 * Parameters, moments and gradients are float32 (as torch keeps them for float32 parameters); each
 * element's update is computed in float64. The state (step and moments) is plain data, and
 * `encodeAdamWState` / `decodeAdamWState` turn it into safetensors bytes for a checkpoint
 * (`new AdamW(sizes, options, state)` resumes).
 */
import { parseSafetensorsBytes, writeSafetensors, type TensorToWrite } from "../../services/model/safetensors.ts";

export interface AdamWOptions {
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Everything a resumed run needs besides the parameters. */
export interface AdamWState {
  /** Optimizer steps taken (t of the last update; 0 before the first). */
  step: number;
  /** First moments, one per parameter, in parameter order. */
  m: Float32Array[];
  /** Second moments. */
  v: Float32Array[];
}

export function adamWHyper(options: AdamWOptions = {}): AdamWHyper {
  const [beta1, beta2] = options.betas ?? [0.9, 0.999];
  const h = { beta1, beta2, eps: options.eps ?? 1e-8, weightDecay: options.weightDecay ?? 0.01 };
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new Error(`AdamW betas must be in [0, 1), got ${beta1}, ${beta2}`);
  if (!(h.eps >= 0) || !(h.weightDecay >= 0)) throw new Error("AdamW eps and weight decay must be non-negative");
  return h;
}

export class AdamW {
  readonly hyper: AdamWHyper;
  private state: AdamWState;

  /** `sizes[i]` is the length of parameter i; moments start at zero. */
  constructor(sizes: readonly number[], options: AdamWOptions = {}, state?: AdamWState) {
    this.hyper = adamWHyper(options);
    this.state = state ? checkState(state, sizes) : { step: 0, m: sizes.map((n) => new Float32Array(n)), v: sizes.map((n) => new Float32Array(n)) };
  }

  get step(): number {
    return this.state.step;
  }

  /** One update of every parameter in place, at learning rate `lr`. */
  update(params: readonly Float32Array[], grads: readonly Float32Array[], lr: number): void {
    if (params.length !== this.state.m.length || grads.length !== params.length) {
      throw new Error(`AdamW holds ${this.state.m.length} parameters, got ${params.length} parameters and ${grads.length} gradients`);
    }
    const t = ++this.state.step;
    const { beta1, beta2, eps, weightDecay } = this.hyper;
    const correction1 = 1 - beta1 ** t;
    const correction2 = 1 - beta2 ** t;
    params.forEach((p, i) => {
      const g = grads[i]!;
      const m = this.state.m[i]!;
      const v = this.state.v[i]!;
      if (p.length !== m.length || g.length !== m.length) throw new Error(`parameter ${i}: ${p.length} values and ${g.length} gradients, expected ${m.length}`);
      for (let k = 0; k < p.length; k++) {
        const gk = g[k]!;
        // As torch's in-place ops: each of p, m, v is stored (rounded to float32) before it is read.
        p[k] = p[k]! * (1 - lr * weightDecay);
        m[k] = beta1 * m[k]! + (1 - beta1) * gk;
        v[k] = beta2 * v[k]! + (1 - beta2) * gk * gk;
        p[k] = p[k]! - (lr * (m[k]! / correction1)) / (Math.sqrt(v[k]! / correction2) + eps);
      }
    });
  }

  /** A copy of the state, for a checkpoint. */
  exportState(): AdamWState {
    return { step: this.state.step, m: this.state.m.map((a) => a.slice()), v: this.state.v.map((a) => a.slice()) };
  }
}

function checkState(state: AdamWState, sizes: readonly number[]): AdamWState {
  const ok = state.m.length === sizes.length && state.v.length === sizes.length && sizes.every((n, i) => state.m[i]!.length === n && state.v[i]!.length === n);
  if (!ok || !(Number.isInteger(state.step) && state.step >= 0)) throw new Error("AdamW state does not match the parameters");
  return { step: state.step, m: state.m.map((a) => a.slice()), v: state.v.map((a) => a.slice()) };
}

/** The optimizer's state as safetensors: tensors `m.{i}` and `v.{i}`; step and hyperparameters in the metadata. */
export function encodeAdamWState(optimizer: AdamW): Uint8Array {
  const state = optimizer.exportState();
  const { beta1, beta2, eps, weightDecay } = optimizer.hyper;
  const tensors: Record<string, TensorToWrite> = {};
  state.m.forEach((m, i) => {
    tensors[`m.${i}`] = { dtype: "F32", shape: [m.length], data: m };
    tensors[`v.${i}`] = { dtype: "F32", shape: [m.length], data: state.v[i]! };
  });
  const options: AdamWOptions = { betas: [beta1, beta2], eps, weightDecay };
  return writeSafetensors(tensors, { format: "switchyard.adamw", step: String(state.step), count: String(state.m.length), options: JSON.stringify(options) });
}

/** What `new AdamW(sizes, options, state)` resumes from. */
export function decodeAdamWState(bytes: Uint8Array): { state: AdamWState; options: AdamWOptions } {
  const meta = safetensorsMetadata(bytes);
  if (meta.format !== "switchyard.adamw") throw new Error("not an AdamW state (metadata format)");
  const count = Number(meta.count);
  const store = parseSafetensorsBytes(bytes, "optimizer state");
  try {
    const read = (part: "m" | "v") => Array.from({ length: count }, (_, i) => store.getF32(`${part}.${i}`));
    const { betas, eps, weightDecay } = JSON.parse(meta.options ?? "{}") as AdamWOptions;
    return { state: { step: Number(meta.step), m: read("m"), v: read("v") }, options: { betas, eps, weightDecay } };
  } finally {
    store.close();
  }
}

/** The `__metadata__` of a safetensors header (the reader in services/model does not expose it). */
function safetensorsMetadata(bytes: Uint8Array): Record<string, string> {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as { __metadata__?: Record<string, string> };
  return header.__metadata__ ?? {};
}
