/**
 * LoRA dropout as PEFT applies it: `lora_B(lora_A(dropout(x))) * scaling`, on the LoRA branch only (the
 * base projection sees x), inverted scaling (a kept element is multiplied by 1/(1-p)), one independent
 * mask per adapted module (PEFT holds one nn.Dropout per module, even where q/k/v share their input),
 * and training only: evaluation runs the graph without masks (trainer/step-graph.ts's eval.onnx).
 *
 * The masks are graph inputs (`lora.{i}.{t}.dropout`, services/model/llama/lora.ts) drawn here. Their
 * seed is a function of (run seed, optimizer step, micro-batch index) alone, so a run is deterministic
 * for its seed and a resumed run draws the same masks without storing an RNG state.
 */
import { createRandom } from "../services/inference/sampler.ts";
import { loraDropoutName } from "../services/model/lora-layout.ts";
import type { FeedTensor, LoraParams } from "./lora-params.ts";

export interface DropoutSpec {
  /** Probability of dropping an element, in (0, 1). */
  p: number;
  /** The run's seed. */
  seed: number;
}

/** The seed of the masks of micro-batch `micro` of optimizer step `step` (0-based: steps already taken). */
export function maskSeed(seed: number, step: number, micro: number): number {
  let h = Math.imul(seed ^ 0x2545f491, 0x9e3779b1);
  h = Math.imul(h ^ (step + 1), 0x85ebca77);
  h = Math.imul(h ^ (micro + 1), 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

/** One mask [batch, seq, in] per trained module, in `params.modules` order, drawn from `seed`. */
export function dropoutMasks(params: LoraParams, dims: { batch: number; seq: number }, p: number, seed: number): Record<string, FeedTensor> {
  if (!(p > 0 && p < 1)) throw new Error(`LoRA dropout must be in (0, 1), got ${p}`);
  const uniform = createRandom(seed);
  const kept = 1 / (1 - p);
  const feeds: Record<string, FeedTensor> = {};
  for (const m of params.modules) {
    const data = new Float32Array(dims.batch * dims.seq * m.inFeatures);
    for (let i = 0; i < data.length; i++) data[i] = uniform() < p ? 0 : kept;
    feeds[loraDropoutName(m.layer, m.target)] = { dims: [dims.batch, dims.seq, m.inFeatures], data };
  }
  return feeds;
}
