/**
 * The compiled DPO step: two ONNX graphs built from the same model functions as SFT's
 * (trainer/step-graph.ts), cached on disk under their own key, each run by one onnxruntime session.
 *   dpo-train.onnx  training graph + per-row sequence log-probs + the preference loss (sigmoid or IPO)
 *                   + ∂loss/∂(the trained targets' LoRA inputs)  -> loss, logps, grad.lora.{i}.{t}.{a|b}
 *   logps.onnx      training graph + per-row sequence log-probs -> logps  (the reference policy's, once
 *                   per example, and the validation pairs'; no gradient)
 * Rows of a batch: the P chosen conversations, then the P rejected ones (services/model/llama/preference-loss.ts).
 * Inputs besides the batch (trainer/dataset.ts `Batch`: labels, loss_weights = the answer's tokens) and
 * the LoRA feeds: ref_logps [B] and beta [1] (a feed, so β does not change the cache key).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { DecoderConfig } from "../../services/model/config.ts";
import { appendGradients } from "../../services/model/graph/autodiff.ts";
import type { Graph, Value } from "../../services/model/graph/ir.ts";
import { writeOnnx } from "../../services/model/graph/onnx.ts";
import { appendPreferenceLoss, type PreferenceLossType } from "../../services/model/llama/preference-loss.ts";
import { appendSequenceLogProbs } from "../../services/model/llama/sequence-logprob.ts";
import { buildTrainingGraph } from "../../services/model/llama/training-graph.ts";
import type { DecoderWeights } from "../../services/model/llama/weights.ts";
import { LORA_TARGETS, type LoraTarget } from "../../services/model/lora-layout.ts";
import type { Batch } from "../dataset.ts";
import type { FeedTensor } from "../lora-params.ts";
import { exists, trainedInputNames, trainerSessionOptions } from "../step-graph.ts";

export const DPO_STEP_COMPILER_VERSION = "dpo-step-1";

export interface DpoStepRequest {
  config: DecoderConfig;
  weights: DecoderWeights & { identity: string };
  targets: readonly LoraTarget[];
  lossType: PreferenceLossType;
  cacheDir: string;
  threads?: number;
}

export interface DpoStepResult {
  loss: number;
  /** The policy's sequence log-probabilities of the batch's rows. */
  logps: Float32Array;
  grads: Map<string, Float32Array>;
}

export interface DpoStepRunner {
  key: string;
  runStep(batch: Batch, refLogps: Float32Array, beta: number, lora: Record<string, FeedTensor>): Promise<DpoStepResult>;
  /** Sequence log-probabilities of the batch's rows under `lora` (no gradient). */
  logProbs(batch: Batch, lora: Record<string, FeedTensor>): Promise<Float32Array>;
  close(): Promise<void>;
}

export function dpoStepKey(config: DecoderConfig, identity: string, targets: readonly LoraTarget[], lossType: PreferenceLossType): string {
  const ordered = LORA_TARGETS.filter((t) => targets.includes(t));
  return createHash("sha256").update(JSON.stringify([DPO_STEP_COMPILER_VERSION, identity, config, ordered, lossType])).digest("hex").slice(0, 32);
}

/** Training graph + sequence log-probs + preference loss + gradients of the trained LoRA inputs. */
export function buildDpoStepGraph(config: DecoderConfig, weights: DecoderWeights, targets: readonly LoraTarget[], lossType: PreferenceLossType): Graph {
  const g = buildTrainingGraph(config, weights);
  const { logps } = appendSequenceLogProbs(g, dropLogits(g));
  const { loss } = appendPreferenceLoss(g, logps, lossType);
  const names = new Set(trainedInputNames(config, targets));
  appendGradients(g, loss, g.inputs.filter((v) => names.has(v.name)));
  return g;
}

/** Training graph + sequence log-probs only. */
export function buildLogProbGraph(config: DecoderConfig, weights: DecoderWeights): Graph {
  const g = buildTrainingGraph(config, weights);
  appendSequenceLogProbs(g, dropLogits(g));
  return g;
}

/** The logits value, no longer an output (the step returns log-probs, not [B, T, V]). */
function dropLogits(g: Graph): Value {
  const at = g.outputs.findIndex((v) => v.name === "logits");
  if (at < 0) throw new Error("the training graph has no logits output");
  return g.outputs.splice(at, 1)[0]!;
}

export async function openDpoStepRunner(request: DpoStepRequest): Promise<DpoStepRunner> {
  const { config, weights, targets } = request;
  const key = dpoStepKey(config, weights.identity, targets, request.lossType);
  const dir = join(request.cacheDir, key);
  const trainPath = join(dir, "dpo-train.onnx");
  const logpPath = join(dir, "logps.onnx");
  if (!(await exists(trainPath))) await writeOnnx(buildDpoStepGraph(config, weights, targets, request.lossType), dir, "dpo-train");
  if (!(await exists(logpPath))) await writeOnnx(buildLogProbGraph(config, weights), dir, "logps");
  const options = trainerSessionOptions(request.threads);
  const train = await ort.InferenceSession.create(trainPath, options);
  const logp = await ort.InferenceSession.create(logpPath, options);
  const gradNames = trainedInputNames(config, targets).map((n) => `grad.${n}`);
  return {
    key,
    async runStep(batch, refLogps, beta, lora) {
      const feeds = { ...feedsOf(batch, lora), ref_logps: new ort.Tensor("float32", refLogps, [batch.batch]), beta: new ort.Tensor("float32", Float32Array.of(beta), [1]) };
      const out = await train.run(feeds, ["loss", "logps", ...gradNames]);
      const grads = new Map(gradNames.map((n) => [n.slice("grad.".length), out[n]!.data as Float32Array]));
      return { loss: (out.loss!.data as Float32Array)[0]!, logps: out.logps!.data as Float32Array, grads };
    },
    async logProbs(batch, lora) {
      const out = await logp.run(feedsOf(batch, lora), ["logps"]);
      return out.logps!.data as Float32Array;
    },
    async close() {
      await train.release();
      await logp.release();
    },
  };
}

function feedsOf(batch: Batch, lora: Record<string, FeedTensor>): Record<string, ort.Tensor> {
  const dims = [batch.batch, batch.seq];
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", batch.inputIds, dims),
    position_ids: new ort.Tensor("int64", batch.positionIds, dims),
    attention_mask: new ort.Tensor("int64", batch.attentionMask, dims),
    labels: new ort.Tensor("int64", batch.labels, dims),
    loss_weights: new ort.Tensor("float32", batch.lossWeights, dims),
  };
  for (const [name, f] of Object.entries(lora)) feeds[name] = new ort.Tensor("float32", f.data, f.dims);
  return feeds;
}
