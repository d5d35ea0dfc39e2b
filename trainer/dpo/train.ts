/**
 * The DPO loop: `trainDpo(request, hooks)` fine-tunes a LoRA adapter on preference pairs, with the same
 * optimizer side as SFT (trainer/train.ts: PEFT init, AdamW, cosine-with-warmup, clipping, best
 * checkpoint by validation loss, patience, cancellation before every step, epoch adapters, state
 * checkpoints and resume) and a different step (./step-graph.ts: sequence log-probs + preference loss).
 *
 * Reference policy (TRL with PEFT): the base model with the adapter off (B = 0), or, when the job
 * continues an adapter (`initialAdapter`), that adapter frozen. Its log-probabilities of every training
 * and validation row are computed once, before the first step, by the log-prob graph (no gradient).
 *
 * Micro-batches hold at most `microBatchSize` pairs (default 4: 8 rows); a step's gradient is the mean
 * over its pairs (micro-batch gradients weighted by their pair counts). Evaluation (step 0, every
 * `evalEvery` steps, the last) computes the validation pairs' log-probs and, in float64, the DPO loss
 * and TRL's rewards (./pairs.ts); `Evaluation.loss` is that loss and `Evaluation.tokenAccuracy` the
 * reward accuracy. At step 0 policy = reference, so the loss is log 2 (sigmoid) and the margins are 0.
 *
 * Invariants: as trainLora's (same seed -> same split, init, order, adapter bytes); the fingerprint
 * of a resumable state covers the method (β, loss type) and the preference data.
 */
import { basename, join } from "node:path";
import type { PreferenceExample } from "../../services/files/preference-data.ts";
import { withAnswer } from "../../services/files/preference-data.ts";
import { loadChatTemplate } from "../../services/model/chat-template.ts";
import { defaultCompileCacheDir } from "../../services/model/compile-cache.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../services/model/config.ts";
import type { PreferenceLossType } from "../../services/model/llama/preference-loss.ts";
import { openWeights } from "../../services/model/safetensors.ts";
import { loadTokenizer } from "../../services/model/tokenizer.ts";
import type { EvaluationRecord } from "../checkpoint.ts";
import { continuedHyperparameters, startingParams, withoutDelta } from "../continue.ts";
import { chunks, epochOrder, holdOut, type ChatEncoder } from "../dataset.ts";
import { exportPeftAdapter } from "../export.ts";
import { cloneLoraParams, gradientsFromGraph, parameters, trainingFeeds, type LoraParams } from "../lora-params.ts";
import { asOutOfMemory, checkStepMemory, modelWeightBytes, type StepShape } from "../memory.ts";
import { GradientAccumulator } from "../optim/accumulate.ts";
import { clipGradNorm } from "../optim/clip.ts";
import { BestTracker, createTrainState, resolveHyperparameters, restoreRun, runFingerprint, snapshot, stoppingPatience, type Evaluation, type ResolvedHyperparameters, type TrainHooks, type TrainRequest, type TrainResult, type TrainState } from "../train.ts";
import { addRewards, emptyRewards, encodePair, makePairBatch, refRows, rewardMetrics, type EncodedPair, type RewardSums } from "./pairs.ts";
import { openDpoStepRunner, type DpoStepRunner } from "./step-graph.ts";

export interface DpoOptions {
  /** β, the strength of the pull to the reference (TRL's and OpenAI's default 0.1). */
  beta?: number;
  /** "sigmoid" (DPO, default) or "ipo". */
  lossType?: PreferenceLossType;
}

export const DEFAULT_BETA = 0.1;

export interface DpoTrainRequest extends Omit<TrainRequest, "training" | "validation" | "microBatchSize"> {
  training: PreferenceExample[];
  /** None: hold out 10% (at least 1) of the pairs, seeded. */
  validation?: PreferenceExample[];
  dpo: DpoOptions;
  /** Most pairs per onnxruntime run (2 rows each; default 4). */
  microBatchSize?: number;
}

export interface DpoTrainResult extends TrainResult {
  /** The validation rewards (TRL's names, eval_ prefix) of the base/reference (step 0) and of the best checkpoint. */
  baseRewards: Record<string, number>;
  bestRewards: Record<string, number>;
  /** Per validation pair of the best checkpoint: its margin over the reference, (π_c − π_r) − (ref_c − ref_r). */
  bestMargins: number[];
  /** The validation pairs evaluated (index-aligned with `bestMargins`). */
  validationPairs: PreferenceExample[];
}

export type Reference = { chosen: Float64Array; rejected: Float64Array };

interface Prepared {
  config: DecoderConfig;
  training: EncodedPair[];
  validation: EncodedPair[];
  validationExamples: PreferenceExample[];
}

const PAD_ID = 0;

export function resolveDpo(o: DpoOptions): Required<DpoOptions> {
  const beta = o.beta ?? DEFAULT_BETA;
  if (!(beta > 0 && Number.isFinite(beta))) throw new Error(`beta must be positive, got ${beta}`);
  const lossType = o.lossType ?? "sigmoid";
  if (lossType !== "sigmoid" && lossType !== "ipo") throw new Error(`loss_type must be sigmoid or ipo, got ${String(lossType)}`);
  return { beta, lossType };
}

async function prepare(request: DpoTrainRequest): Promise<Prepared> {
  const [config, tokenizer, template] = await Promise.all([loadDecoderConfig(request.modelDir), loadTokenizer(request.modelDir), loadChatTemplate(request.modelDir)]);
  const encoder: ChatEncoder = { tokenizer, template, eosTokenId: config.eosTokenIds[0] ?? tokenizer.eosTokenIds[0] };
  const maxLength = Math.min(request.maxLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings);
  const split = request.validation && request.validation.length > 0 ? { training: request.training, validation: request.validation } : holdOut(request.training, request.seed);
  const encode = (examples: PreferenceExample[], what: string) => {
    const out = examples.flatMap((example) => {
      const pair = encodePair(example, encoder, maxLength, 0);
      return pair ? [{ example, pair }] : [];
    });
    if (out.length === 0) throw new Error(`no ${what} pair has both answers within ${maxLength} tokens`);
    out.forEach((k, i) => (k.pair.index = i));
    return out;
  };
  const validation = encode(split.validation, "validation");
  return { config, training: encode(split.training, "training").map((k) => k.pair), validation: validation.map((k) => k.pair), validationExamples: validation.map((k) => k.example) };
}

/** Each pair's reference log-probabilities (chosen, rejected) under `reference`'s parameters. */
async function referenceLogProbs(runner: DpoStepRunner, reference: LoraParams, config: DecoderConfig, pairs: readonly EncodedPair[], micro: number): Promise<Reference> {
  const feeds = trainingFeeds(reference, config);
  const out: Reference = { chosen: new Float64Array(pairs.length), rejected: new Float64Array(pairs.length) };
  for (const group of chunks(pairs, micro)) {
    const logps = await runner.logProbs(makePairBatch(group, PAD_ID), feeds);
    group.forEach((p, i) => {
      out.chosen[p.index] = logps[i]!;
      out.rejected[p.index] = logps[i + group.length]!;
    });
  }
  return out;
}

interface DpoEvaluation extends Evaluation {
  rewards: RewardSums;
  margins: number[];
}

async function evaluatePairs(runner: DpoStepRunner, params: LoraParams, config: DecoderConfig, pairs: readonly EncodedPair[], ref: Reference, micro: number, o: Required<DpoOptions>): Promise<DpoEvaluation> {
  const feeds = trainingFeeds(params, config);
  const rewards = emptyRewards();
  const margins: number[] = [];
  for (const group of chunks(pairs, micro)) {
    const logps = await runner.logProbs(makePairBatch(group, PAD_ID), feeds);
    const refs = refRows(group, ref);
    addRewards(rewards, logps, refs, o.beta, o.lossType);
    group.forEach((_, i) => margins.push(logps[i]! - logps[i + group.length]! - (refs[i]! - refs[i + group.length]!)));
  }
  return { loss: rewards.loss / rewards.pairs, tokenAccuracy: rewards.accuracies / rewards.pairs, rewards, margins };
}

interface DpoStepOutcome {
  loss: number;
  gradNorm: number;
  learningRate: number;
  tokens: number;
  rewards: RewardSums;
}

/** One optimizer step over micro-batches of pairs: accumulate (weighted by pairs) -> clip -> AdamW. */
export async function dpoStep(runner: DpoStepRunner, state: TrainState, micro: readonly EncodedPair[][], ref: Reference, o: Required<DpoOptions>, maxGradNorm: number): Promise<DpoStepOutcome> {
  const params = parameters(state.params);
  const accumulator = new GradientAccumulator(params.map((p) => p.length));
  const feeds = trainingFeeds(state.params, state.config);
  const rewards = emptyRewards();
  let lossSum = 0;
  let tokens = 0;
  for (const group of micro) {
    const batch = makePairBatch(group, PAD_ID);
    const refs = refRows(group, ref);
    const { loss, logps, grads } = await runner.runStep(batch, refs, o.beta, feeds);
    accumulator.add(gradientsFromGraph(state.params, (name) => grads.get(name)!), group.length);
    addRewards(rewards, logps, refs, o.beta, o.lossType);
    lossSum += loss * group.length;
    tokens += batch.tokens;
  }
  const grads = accumulator.mean();
  const gradNorm = clipGradNorm(grads, maxGradNorm);
  const learningRate = state.lr(state.optimizer.step);
  state.optimizer.update(params, grads, learningRate);
  return { loss: lossSum / rewards.pairs, gradNorm, learningRate, tokens, rewards };
}

/** Fine-tunes a LoRA adapter on preference pairs (DPO / IPO) and returns the best checkpoint's PEFT files. */
export async function trainDpo(request: DpoTrainRequest, hooks: TrainHooks = {}): Promise<DpoTrainResult> {
  resolveHyperparameters(request.hyperparameters);
  const o = resolveDpo(request.dpo);
  const micro = request.microBatchSize ?? 4;
  const resume = request.resume;
  if (resume && resume.fingerprint !== dpoFingerprint(request)) throw new Error("the checkpoint to resume belongs to another run (data, method, hyperparameters, seed or model differ)");
  const data = await prepare(request);
  const { config } = data;
  const initial = request.initialAdapter ? startingParams(request.initialAdapter, config) : undefined;
  const h = resolveHyperparameters(initial ? continuedHyperparameters(request.hyperparameters, initial.spec) : request.hyperparameters);
  if (h.dropout > 0) throw new Error("LoRA dropout is not supported with DPO (the policy and reference log-probs must come from the same deterministic forward)");
  const batchSize = Math.min(h.batchSize, data.training.length);
  const stepsPerEpoch = Math.ceil(data.training.length / batchSize);
  const totalSteps = Math.min(h.maxSteps ?? Infinity, h.epochs * stepsPerEpoch);
  const evalEvery = h.evalEvery ?? Math.max(1, Math.ceil(totalSteps / 10));
  const shape = await stepShape(request, data, 2 * Math.min(micro, batchSize), h);
  checkStepMemory(config, shape, request.memoryLimitMb);
  const runner = await openRunner(request, config, h, o).catch((e: unknown) => Promise.reject(asOutOfMemory(e, config, shape, request.memoryLimitMb)));
  try {
    const state = createTrainState(config, h, request.seed, totalSteps, initial);
    const reference = initial ? cloneLoraParams(state.params) : withoutDelta(state.params);
    const ref = {
      training: await referenceLogProbs(runner, reference, config, data.training, micro),
      validation: await referenceLogProbs(runner, reference, config, data.validation, micro),
    };
    const evaluate = (params: LoraParams) => evaluatePairs(runner, params, config, data.validation, ref.validation, micro, o);
    const start = await evaluate(state.params);
    const loop = resume ? restoreRun(state, resume, h) : { tracker: new BestTracker(start, state.params, stoppingPatience(h)), history: [{ step: 0, validLoss: start.loss, tokenAccuracy: start.tokenAccuracy }] as EvaluationRecord[] };
    const { tracker } = loop;
    let best: DpoEvaluation = resume ? await evaluate(tracker.bestParams) : start;
    let steps = resume?.step ?? 0;
    let trainedTokens = resume?.trainedTokens ?? 0;
    let cancelled = false;
    for (let epoch = resume?.epoch ?? 0; steps < totalSteps && !tracker.stopped && !cancelled; epoch++) {
      const order = epochOrder(data.training.length, request.seed, epoch).map((i) => data.training[i]!);
      const epochSteps = chunks(order, batchSize).map((s) => chunks(s, micro));
      for (let i = resume && epoch === resume.epoch ? resume.stepInEpoch : 0; i < epochSteps.length; i++) {
        if (steps >= totalSteps || tracker.stopped) break;
        if (hooks.signal?.aborted || hooks.shouldStop?.()) {
          cancelled = true;
          break;
        }
        const started = performance.now();
        const outcome = await dpoStep(runner, state, epochSteps[i]!, ref.training, o, h.maxGradNorm);
        const seconds = (performance.now() - started) / 1000;
        steps++;
        trainedTokens += outcome.tokens;
        const evaluation = steps % evalEvery === 0 || steps === totalSteps ? await evaluate(state.params) : undefined;
        if (evaluation) {
          if (evaluation.loss < tracker.bestLoss) best = evaluation;
          tracker.record(evaluation, state.params, steps);
          loop.history.push({ step: steps, validLoss: evaluation.loss, tokenAccuracy: evaluation.tokenAccuracy, trainLoss: outcome.loss });
        }
        const metrics = { ...rewardMetrics(outcome.rewards), ...(evaluation ? rewardMetrics(evaluation.rewards, "eval_") : {}) };
        await hooks.onStep?.({ step: steps, totalSteps, trainLoss: outcome.loss, validLoss: evaluation?.loss, learningRate: outcome.learningRate, gradNorm: outcome.gradNorm, tokensPerSecond: outcome.tokens / seconds, metrics });
        const epochDone = i === epochSteps.length - 1;
        if (epochDone && hooks.onEpochEnd) {
          await hooks.onEpochEnd({ epoch: epoch + 1, step: steps, trainLoss: outcome.loss, validLoss: evaluation?.loss, adapter: exportPeftAdapter(state.params, { baseModel: basename(request.modelDir) }) });
        }
        const checkpointDue = request.checkpointEvery === undefined ? evaluation !== undefined : steps % request.checkpointEvery === 0;
        if (checkpointDue && hooks.onCheckpoint) {
          const position = epochDone ? { epoch: epoch + 1, stepInEpoch: 0 } : { epoch, stepInEpoch: i + 1 };
          await hooks.onCheckpoint(snapshot(dpoFingerprint(request), state, tracker, loop.history, { step: steps, trainedTokens, ...position }));
        }
      }
    }
    const chosenExamples = data.validationExamples.map((e) => ({ line: e.line, messages: withAnswer(e, e.chosen) }));
    return {
      adapter: exportPeftAdapter(tracker.bestParams, { baseModel: basename(request.modelDir) }),
      bestStep: tracker.bestStep,
      steps,
      trainedTokens,
      baseValidLoss: start.loss,
      startValidLoss: tracker.baseLoss,
      bestValidLoss: tracker.bestLoss,
      baseEvaluation: tracker.base,
      bestEvaluation: tracker.best,
      validation: chosenExamples,
      stoppedEarly: tracker.stopped,
      cancelled,
      baseRewards: rewardMetrics(start.rewards, "eval_"),
      bestRewards: rewardMetrics(best.rewards, "eval_"),
      bestMargins: best.margins,
      validationPairs: data.validationExamples,
    };
  } catch (e) {
    throw asOutOfMemory(e, config, shape, request.memoryLimitMb);
  } finally {
    await runner.close();
  }
}

/** What a state checkpoint must match to resume `request`: the method (β, loss type), the pairs, hyperparameters, seed, model. */
export function dpoFingerprint(request: DpoTrainRequest): string {
  return runFingerprint(request, { method: "dpo", dpo: resolveDpo(request.dpo), microBatchSize: request.microBatchSize ?? 4 });
}

async function stepShape(request: DpoTrainRequest, data: Prepared, rows: number, h: ResolvedHyperparameters): Promise<StepShape> {
  const all = [...data.training, ...data.validation].flatMap((p) => [p.chosen.ids.length, p.rejected.ids.length]);
  return { batch: rows, seq: Math.max(...all), targets: h.targetModules, rank: h.rank, dropout: false, weightBytes: await modelWeightBytes(request.modelDir) };
}

async function openRunner(request: DpoTrainRequest, config: DecoderConfig, h: ResolvedHyperparameters, o: Required<DpoOptions>): Promise<DpoStepRunner> {
  const store = await openWeights(request.modelDir);
  try {
    const cacheDir = request.cacheDir ?? join(defaultCompileCacheDir(), "training");
    return await openDpoStepRunner({ config, weights: store, targets: h.targetModules, lossType: o.lossType, cacheDir, threads: request.threads });
  } finally {
    store.close();
  }
}
