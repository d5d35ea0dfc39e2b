/**
 * The compiled training step of one model: two ONNX graphs built once and cached on disk, each run
 * by one onnxruntime session.
 *   train.onnx  training graph + masked causal-LM loss + ∂loss/∂(every LoRA input of the trained targets)
 *               -> loss, grad.lora.{i}.{t}.{a|b}  (one session runs forward and backward)
 *   eval.onnx   training graph + loss + Σ w·[argmax(logits) = label]  -> loss, correct
 * With `packed` both take `segment_ids` as well (sequence packing; its own cache key); without it the
 * graphs and the key are those of before packing.
 * Inputs: the batch of trainer/dataset.ts (`Batch`) and every LoRA input (trainingFeeds: the trained
 * targets' a = Aᵀ, b = (s·B)ᵀ, zeros elsewhere). Gradients come back in the graph's layout; the caller
 * pulls them back to PEFT's with gradientsFromGraph.
 *
 * The cache key (as services/model/compile-cache.ts) hashes the step compiler version, the weights'
 * identity (services/model/safetensors.ts: sizes, mtimes, headers), the config and the trained targets; files are written atomically by writeOnnx.
 * Sessions stay referenced for the runner's life and are released by `close()` (finalizing many
 * sessions mid-run has crashed vitest workers; see tests/helpers/gradients.ts).
 */
import { createHash } from "node:crypto";
import { access } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { DecoderConfig } from "../services/model/config.ts";
import { appendGradients } from "../services/model/graph/autodiff.ts";
import { attr, type Graph } from "../services/model/graph/ir.ts";
import { writeOnnx } from "../services/model/graph/onnx.ts";
import { appendCausalLmLoss } from "../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../services/model/llama/training-graph.ts";
import type { DecoderWeights } from "../services/model/llama/weights.ts";
import { LORA_TARGETS, loraInputName, type LoraTarget } from "../services/model/lora-layout.ts";
import type { Batch } from "./dataset.ts";
import type { FeedTensor } from "./lora-params.ts";

export const STEP_COMPILER_VERSION = "train-step-2";

export interface StepGraphRequest {
  config: DecoderConfig;
  weights: DecoderWeights & { identity: string };
  targets: readonly LoraTarget[];
  cacheDir: string;
  /** onnxruntime intra-op threads (default: min(4, available cores)). */
  threads?: number;
  /** LoRA dropout: train.onnx takes a mask input per trained target (trainer/dropout.ts); eval.onnx never does. */
  dropout?: boolean;
  /** Sequence packing: both graphs take `segment_ids` (packed rows, trainer/dataset.ts makePackedBatch); batches without it are fed one segment per row. */
  packed?: boolean;
  /** Profile the training session (onnxruntime's JSON trace, written at `close()` to a file starting with this path). */
  profilePrefix?: string;
}

export interface StepResult {
  /** Mean loss over the batch's counted tokens. */
  loss: number;
  /** ∂loss/∂(graph input), by LoRA input name (trained targets only), graph layout. */
  grads: Map<string, Float32Array>;
}

export interface EvalResult {
  loss: number;
  /** Σ w over counted tokens whose greedy prediction is the label. */
  correct: number;
  items: number;
}

export interface StepRunner {
  key: string;
  /** Whether both graphs came from the cache. */
  cached: boolean;
  runStep(batch: Batch, lora: Record<string, FeedTensor>): Promise<StepResult>;
  evaluate(batch: Batch, lora: Record<string, FeedTensor>): Promise<EvalResult>;
  close(): Promise<void>;
}

export function stepGraphKey(config: DecoderConfig, identity: string, targets: readonly LoraTarget[], dropout = false, packed = false): string {
  const ordered = LORA_TARGETS.filter((t) => targets.includes(t));
  const parts: unknown[] = [STEP_COMPILER_VERSION, identity, config, ordered];
  if (dropout) parts.push("lora-dropout");
  if (packed) parts.push("packed");
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 32);
}

/** The names of the LoRA inputs that get gradients, layer by layer, a before b. */
export function trainedInputNames(config: DecoderConfig, targets: readonly LoraTarget[]): string[] {
  const ordered = LORA_TARGETS.filter((t) => targets.includes(t));
  return Array.from({ length: config.numLayers }, (_, i) => ordered.flatMap((t) => [loraInputName(i, t, "a"), loraInputName(i, t, "b")])).flat();
}

/** Training graph + loss + gradients of the trained inputs (with dropout mask inputs on the trained targets when `dropout`). */
export function buildStepGraph(config: DecoderConfig, weights: DecoderWeights, targets: readonly LoraTarget[], dropout = false, packed = false): Graph {
  const g = buildTrainingGraph(config, weights, { ...(dropout ? { dropoutTargets: targets } : {}), ...(packed ? { packed } : {}) });
  const { loss } = appendCausalLmLoss(g, logitsOf(g));
  const names = new Set(trainedInputNames(config, targets));
  appendGradients(g, loss, g.inputs.filter((v) => names.has(v.name)));
  g.outputs.splice(g.outputs.findIndex((v) => v.name === "logits"), 1);
  return g;
}

/** Training graph + loss + the count of correct greedy predictions. */
export function buildEvalGraph(config: DecoderConfig, weights: DecoderWeights, packed = false): Graph {
  const g = buildTrainingGraph(config, weights, packed ? { packed } : {});
  const logits = logitsOf(g);
  const { labels, weights: w } = appendCausalLmLoss(g, logits);
  const predicted = g.op1("ArgMax", [logits], { attrs: { axis: attr.int(-1), keepdims: attr.int(0) } });
  const hits = g.mul(g.cast(g.equal(predicted, labels), "float32"), w);
  g.output(g.reduceSum(hits, [0, 1], false), "correct");
  g.outputs.splice(g.outputs.indexOf(logits), 1);
  return g;
}

function logitsOf(g: Graph) {
  const logits = g.outputs.find((v) => v.name === "logits");
  if (!logits) throw new Error("the training graph has no logits output");
  return logits;
}

/** The training sessions' onnxruntime options (SFT and DPO alike); `threads` default min(4, available cores). */
export function trainerSessionOptions(threads?: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads ?? Math.min(4, availableParallelism()),
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    // Workers sleep between kernels instead of spinning: the trainer shares its cores with the serving engine
    // (and, on a small machine, with everything else), where spinning threads take CPU that others are waiting for.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Builds (or finds in the cache) both graphs and opens their sessions. */
export async function openStepRunner(request: StepGraphRequest): Promise<StepRunner> {
  const { config, weights, targets } = request;
  const packed = request.packed ?? false;
  const key = stepGraphKey(config, weights.identity, targets, request.dropout, packed);
  const dir = join(request.cacheDir, key);
  const trainPath = join(dir, "train.onnx");
  const evalPath = join(dir, "eval.onnx");
  const cached = (await exists(trainPath)) && (await exists(evalPath));
  if (!(await exists(trainPath))) await writeOnnx(buildStepGraph(config, weights, targets, request.dropout, packed), dir, "train");
  if (!(await exists(evalPath))) await writeOnnx(buildEvalGraph(config, weights, packed), dir, "eval");
  const options = trainerSessionOptions(request.threads);
  const profiling = request.profilePrefix !== undefined;
  const train = await ort.InferenceSession.create(trainPath, profiling ? { ...options, enableProfiling: true, profileFilePrefix: request.profilePrefix } : options);
  const evalSession = await ort.InferenceSession.create(evalPath, options);
  const gradNames = trainedInputNames(config, targets).map((n) => `grad.${n}`);

  return {
    key,
    cached,
    async runStep(batch, lora) {
      const out = await train.run(feedsOf(batch, lora, packed), ["loss", ...gradNames]);
      const grads = new Map(gradNames.map((n) => [n.slice("grad.".length), out[n]!.data as Float32Array]));
      return { loss: scalar(out.loss!), grads };
    },
    async evaluate(batch, lora) {
      const out = await evalSession.run(feedsOf(batch, lora, packed), ["loss", "correct"]);
      return { loss: scalar(out.loss!), correct: scalar(out.correct!), items: batch.items };
    },
    async close() {
      if (profiling) train.endProfiling();
      await train.release();
      await evalSession.release();
    },
  };
}

function scalar(t: ort.Tensor): number {
  return (t.data as Float32Array)[0]!;
}

function feedsOf(batch: Batch, lora: Record<string, FeedTensor>, packed: boolean): Record<string, ort.Tensor> {
  const dims = [batch.batch, batch.seq];
  if (batch.segmentIds && !packed) throw new Error("a packed batch needs a runner opened with `packed`");
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", batch.inputIds, dims),
    position_ids: new ort.Tensor("int64", batch.positionIds, dims),
    attention_mask: new ort.Tensor("int64", batch.attentionMask, dims),
    labels: new ort.Tensor("int64", batch.labels, dims),
    loss_weights: new ort.Tensor("float32", batch.lossWeights, dims),
  };
  // an unpacked batch in a packed graph: each row is one segment (its real tokens)
  if (packed) feeds.segment_ids = new ort.Tensor("int64", batch.segmentIds ?? batch.attentionMask, dims);
  for (const [name, f] of Object.entries(lora)) feeds[name] = new ort.Tensor("float32", f.data, f.dims);
  return feeds;
}
