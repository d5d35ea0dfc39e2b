/**
 * Will one training step fit? An estimate of a step's memory from the model config, the micro-batch
 * size and the sequence length, made before training starts, against a limit (the configured
 * SWITCHYARD_TRAINER_MEMORY_MB, else the memory the machine has available now); a job over it fails
 * with code `out_of_memory` and a message naming the batch, the estimate, the limit and what to lower.
 * An allocation failure inside onnxruntime becomes the same error (`asOutOfMemory`).
 *
 * The estimate (float32, B = micro-batch, T = tokens, N = B·T, per layer of L; H heads, D head dim,
 * h hidden, m intermediate, V vocab, k trained targets of rank r):
 *   attention   the softmax probabilities [B, H, T, T] the backward pass keeps per layer, and the
 *               scores before them (2 per layer), plus 3 of that size alive at the peak of one
 *               layer's backward (∂P, ∂scores, the bias tiled per head): (2L + 3)·B·H·T²
 *   per token   what the backward pass keeps of each layer: the normed inputs, q/k/v before and after
 *               RoPE, the context, the residuals, gate, up, silu(gate), silu(gate)·up, each LoRA
 *               branch's x·A (and with dropout each masked input and its mask):
 *               N·L·(8h + 4(H + 2·kvH)·D + 4m + 2kr [+ 2·Σ in])
 *   head        logits, log-softmax and ∂logits: 3·N·V
 *   weights     the base weights, held by both sessions (train and eval): 2 × their bytes
 * times an allowance of 1.5 for onnxruntime's arena rounding and workspace. bench/trainer.ts prints the
 * estimate beside the process's peak RSS: stories260k at T = 256, B = 8 ≈ 440 MiB vs 1.1 GiB, and the
 * 2-layer TinyLlama-shaped model ≈ 4.7 GiB vs 9.8 GiB; the RSS also holds the Node runtime and the
 * graph compilation's copies of the weights (JS initializers, the ONNX file, both sessions loading),
 * which are gone before the first step. An estimate that is still short is caught by `asOutOfMemory`.
 */
import { readdir, stat } from "node:fs/promises";
import { freemem } from "node:os";
import { join } from "node:path";
import { PlaneError } from "../ports/errors.ts";
import type { DecoderConfig } from "../services/model/config.ts";
import { projectionShape, type LoraTarget } from "../services/model/lora-layout.ts";

export interface StepShape {
  /** Sequences per onnxruntime run (the micro-batch). */
  batch: number;
  /** Tokens of the longest sequence. */
  seq: number;
  targets: readonly LoraTarget[];
  rank: number;
  dropout: boolean;
  /** Bytes of the base model's weights. */
  weightBytes: number;
}

const FLOAT = 4;
const ALLOWANCE = 1.5;
const MIB = 1 << 20;

/** Estimated bytes of one training step (see the header). */
export function estimateStepBytes(c: DecoderConfig, s: StepShape): number {
  const { batch: B, seq: T } = s;
  const N = B * T;
  const L = c.numLayers;
  const attention = (2 * L + 3) * B * c.numHeads * T * T;
  const inputs = s.targets.reduce((sum, t) => sum + projectionShape(c, t).in, 0);
  const perToken = 8 * c.hiddenSize + 4 * (c.numHeads + 2 * c.numKvHeads) * c.headDim + 4 * c.intermediateSize + 2 * s.targets.length * s.rank + (s.dropout ? 2 * inputs : 0);
  const head = 3 * N * c.vocabSize;
  return ALLOWANCE * (FLOAT * (attention + N * L * perToken + head) + 2 * s.weightBytes);
}

/** The limit: `configuredMb`, else the memory available now (a cgroup's limit too, when there is one). */
export function memoryLimitBytes(configuredMb?: number): { bytes: number; source: string } {
  if (configuredMb !== undefined) return { bytes: configuredMb * MIB, source: "SWITCHYARD_TRAINER_MEMORY_MB" };
  const constrained = process.constrainedMemory?.() ?? 0;
  const free = freemem();
  const cgroupFree = constrained > 0 ? constrained - process.memoryUsage.rss() : Infinity;
  return { bytes: Math.min(free, cgroupFree), source: "the memory available" };
}

const mib = (bytes: number) => `${Math.round(bytes / MIB).toLocaleString("en-US")} MiB`;

/** The job's error: what did not fit, by how much, and what to lower. */
export function outOfMemory(s: StepShape, estimate: number, limit: { bytes: number; source: string }, cause?: string): PlaneError {
  const what = cause ? `onnxruntime could not allocate memory (${cause}); ` : "";
  return new PlaneError(
    "too_large",
    `Out of memory: ${what}a training micro-batch of ${s.batch} sequences × ${s.seq} tokens needs an estimated ${mib(estimate)} for one step, over the limit of ${mib(limit.bytes)} (${limit.source}). ` +
      `Lower batch_size (micro-batches hold at most ${s.batch} sequences; larger batches accumulate), shorten the longest examples, or train fewer target_modules; or raise SWITCHYARD_TRAINER_MEMORY_MB.`,
    { code: "out_of_memory" },
  );
}

/** Refuses a step whose estimate is over the limit. */
export function checkStepMemory(c: DecoderConfig, s: StepShape, configuredMb?: number): void {
  const estimate = estimateStepBytes(c, s);
  const limit = memoryLimitBytes(configuredMb);
  if (estimate > limit.bytes) throw outOfMemory(s, estimate, limit);
}

const ALLOCATION_FAILURE = /bad_alloc|failed to allocate|out of memory|allocation fail|cannot allocate/i;

/** An onnxruntime allocation failure as the out_of_memory error; anything else unchanged. */
export function asOutOfMemory(e: unknown, c: DecoderConfig, s: StepShape, configuredMb?: number): unknown {
  if (e instanceof PlaneError || !(e instanceof Error) || !ALLOCATION_FAILURE.test(e.message)) return e;
  return outOfMemory(s, estimateStepBytes(c, s), memoryLimitBytes(configuredMb), e.message.split("\n")[0]!.slice(0, 200));
}

/** Bytes of the model folder's safetensors files (what the sessions hold as initializers). */
export async function modelWeightBytes(modelDir: string): Promise<number> {
  const files = (await readdir(modelDir)).filter((f) => f.endsWith(".safetensors"));
  const sizes = await Promise.all(files.map(async (f) => (await stat(join(modelDir, f))).size));
  return sizes.reduce((a, b) => a + b, 0);
}
