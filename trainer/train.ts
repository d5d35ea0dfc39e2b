/**
 * The LoRA fine-tuning loop: `trainLora(request, hooks)`.
 *
 *   PEFT init (A Kaiming-uniform, B = 0; seeded)  ->  for each epoch, a seeded shuffle, batches of
 *   `batchSize` examples split into micro-batches of at most `microBatchSize` rows (gradient accumulation
 *   weighted by counted tokens; short examples share rows where packing helps, trainer/packing.ts)  ->  global-norm clipping  ->  AdamW at the cosine-with-warmup rate.
 *   Evaluation on the validation set at step 0 (the base model, B = 0, or the adapter being continued:
 *   `initialAdapter`, trainer/continue.ts), every `evalEvery` steps and
 *   at the end; the parameters with the lowest validation loss are kept and exported (PEFT folder
 *   files). Early stopping after `patience` evaluations without improvement. Cancellation
 *   (`signal`, `shouldStop`) is checked before every step, so it stops within one step. LoRA dropout
 *   (trainer/dropout.ts) masks the training steps only. A step whose estimated memory is over the
 *   limit fails before anything is compiled (trainer/memory.ts: code out_of_memory).
 *
 * Checkpoints and resume: every `checkpointEvery` steps (default: at each evaluation) `onCheckpoint`
 * gets the loop's whole state (trainer/checkpoint.ts: parameters, AdamW moments and step, data
 * position, best tracker, history); `request.resume` continues from one, and the resumed run's adapter
 * bytes equal the uninterrupted run's. After the last step of each epoch `onEpochEnd` gets the adapter
 * at that point (servable intermediate checkpoints).
 *
 * Invariants: for a seed, the split, the init, the batch order and therefore the adapter bytes are
 * the same on every run (onnxruntime CPU kernels are deterministic for a fixed thread count); the
 * step count never exceeds `maxSteps`; the result's adapter is always the best evaluated one.
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import type { AdapterFiles } from "../services/adapters/archive.ts";
import { loadChatTemplate } from "../services/model/chat-template.ts";
import { defaultCompileCacheDir } from "../services/model/compile-cache.ts";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { LORA_TARGETS, type LoraTarget } from "../services/model/lora-layout.ts";
import { openWeights } from "../services/model/safetensors.ts";
import { loadTokenizer } from "../services/model/tokenizer.ts";
import { requestFingerprint, type BestState, type EvaluationRecord, type TrainCheckpoint } from "./checkpoint.ts";
import { chunks, encodeExample, epochOrder, holdOut, makeBatch, type Batch, type ChatEncoder, type ChatExample, type EncodedExample } from "./dataset.ts";
import { exportPeftAdapter } from "./export.ts";
import { cloneLoraParams, gradientsFromGraph, initLoraParams, parameters, trainingFeeds, type LoraParams } from "./lora-params.ts";
import { GradientAccumulator } from "./optim/accumulate.ts";
import { AdamW } from "./optim/adamw.ts";
import { clipGradNorm } from "./optim/clip.ts";
import { cosineWithWarmup } from "./optim/schedule.ts";
import { continuedHyperparameters, startingParams, withoutDelta } from "./continue.ts";
import { asOutOfMemory, checkStepMemory, modelWeightBytes, type StepShape } from "./memory.ts";
import { dropoutMasks, maskSeed, type DropoutSpec } from "./dropout.ts";
import { choosePacking, stepBatches } from "./packing.ts";
import { openStepRunner, type StepRunner } from "./step-graph.ts";

export type { ChatExample } from "./dataset.ts";

export interface Hyperparameters {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  rank?: number;
  alpha?: number;
  targetModules?: LoraTarget[];
  warmupRatio?: number;
  weightDecay?: number;
  maxSteps?: number;
  evalEvery?: number;
  patience?: number;
  maxGradNorm?: number;
  /** LoRA dropout probability in [0, 1) (PEFT's lora_dropout; trainer/dropout.ts); 0 = off. */
  dropout?: number;
  /** Early stopping after `patience` evaluations without improvement (default true); false runs every step. */
  earlyStopping?: boolean;
  /** Sequence packing (trainer/packing.ts): "auto" (default) packs when it cuts the padded cells enough; true/false force it. */
  packing?: "auto" | boolean;
}

export interface TrainRequest {
  /** HF folder (stories260k in tests). */
  modelDir: string;
  /** From parseTrainingData. */
  training: ChatExample[];
  /** None: hold out 10% (at least 1) of training, seeded. */
  validation?: ChatExample[];
  hyperparameters: Hyperparameters;
  seed: number;
  /** Compiled training graphs (default `<data dir>/compiled/training`). */
  cacheDir?: string;
  /** Extension: most examples per onnxruntime run; larger batches accumulate (default 8). */
  microBatchSize?: number;
  /** Extension: longest example in tokens (default and cap: the model's context). */
  maxLength?: number;
  /** Extension: onnxruntime intra-op threads (default min(4, cores)). */
  threads?: number;
  /**
   * Continuing an adapter: its PEFT files (trainer/continue.ts). Its A/B are the starting parameters
   * and its rank, alpha, targets and rsLoRA flag the adapter's shape; hyperparameters may not differ.
   */
  initialAdapter?: AdapterFiles;
  /** The memory one training step may use, MiB (SWITCHYARD_TRAINER_MEMORY_MB); default: what is available (trainer/memory.ts). */
  memoryLimitMb?: number;
  /** `onCheckpoint` every this many steps (default: at each evaluation). */
  checkpointEvery?: number;
  /** Continue from this state (its fingerprint must be this request's: `trainFingerprint`). */
  resume?: TrainCheckpoint;
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  trainLoss: number;
  validLoss?: number;
  tokenAccuracy?: number;
  learningRate: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** Method-specific metrics under their usual names (DPO: TRL's `rewards/chosen`, ..., `eval_rewards/margins`, ...). */
  metrics?: Record<string, number>;
}

/** The adapter after an epoch's last step. */
export interface EpochEnd {
  /** 1-based. */
  epoch: number;
  step: number;
  trainLoss: number;
  /** When that step was evaluated. */
  validLoss?: number;
  tokenAccuracy?: number;
  adapter: AdapterFiles;
}

export interface TrainHooks {
  onStep?(p: TrainProgress): void | Promise<void>;
  /** The loop's state, to be stored (trainer/checkpoint.ts) and passed back as `request.resume`. */
  onCheckpoint?(state: TrainCheckpoint): void | Promise<void>;
  onEpochEnd?(e: EpochEnd): void | Promise<void>;
  shouldStop?(): boolean;
  signal?: AbortSignal;
}

export interface TrainResult {
  /** exportPeftAdapter of the BEST checkpoint by validation loss. */
  adapter: AdapterFiles;
  bestStep: number;
  steps: number;
  trainedTokens: number;
  /** The base model's validation loss (B = 0). */
  baseValidLoss: number;
  /** Step 0's validation loss, of the parameters training started from: the base's, or the continued adapter's. */
  startValidLoss?: number;
  bestValidLoss: number;
  /** The validation set's evaluation of the base model (step 0, B = 0) and of the best checkpoint (for the job's result report). */
  baseEvaluation: Evaluation;
  bestEvaluation: Evaluation;
  /** The validation examples evaluated (the given set, or the held-out 10%; those with a counted token within the length). */
  validation: ChatExample[];
  stoppedEarly: boolean;
  cancelled: boolean;
}

/** Every hyperparameter with its default filled in. */
export type ResolvedHyperparameters = Required<Omit<Hyperparameters, "maxSteps" | "evalEvery" | "patience">> & { maxSteps?: number; evalEvery?: number; patience: number };

/**
 * Defaults. lr 1e-3 is at the high end of PEFT guides (1e-4 ... 1e-3 for LoRA); tiny models such as
 * stories260k want more still (the tests use 1e-2). Targets: every linear layer (QLoRA's advice).
 */
export const DEFAULT_HYPERPARAMETERS: ResolvedHyperparameters = {
  epochs: 3,
  batchSize: 8,
  learningRate: 1e-3,
  rank: 8,
  alpha: 16,
  targetModules: [...LORA_TARGETS],
  warmupRatio: 0.05,
  weightDecay: 0,
  maxGradNorm: 1,
  patience: 3,
  dropout: 0,
  earlyStopping: true,
  packing: "auto",
};

export function resolveHyperparameters(h: Hyperparameters): ResolvedHyperparameters {
  const r: ResolvedHyperparameters = { ...DEFAULT_HYPERPARAMETERS, ...stripUndefined(h) };
  const positiveInts: (keyof ResolvedHyperparameters)[] = ["epochs", "batchSize", "rank", "patience"];
  for (const k of positiveInts) if (!(Number.isInteger(r[k]) && (r[k] as number) >= 1)) throw new Error(`hyperparameter ${k} must be a positive integer, got ${String(r[k])}`);
  for (const k of ["maxSteps", "evalEvery"] as const) if (r[k] !== undefined && !(Number.isInteger(r[k]) && r[k]! >= 1)) throw new Error(`hyperparameter ${k} must be a positive integer, got ${r[k]}`);
  if (!(r.learningRate > 0) || !(r.alpha > 0) || !(r.maxGradNorm > 0)) throw new Error("learningRate, alpha and maxGradNorm must be positive");
  if (!(r.warmupRatio >= 0 && r.warmupRatio < 1) || !(r.weightDecay >= 0)) throw new Error("warmupRatio must be in [0, 1) and weightDecay non-negative");
  if (!(r.dropout >= 0 && r.dropout < 1)) throw new Error(`hyperparameter dropout must be in [0, 1), got ${r.dropout}`);
  if (typeof r.earlyStopping !== "boolean") throw new Error(`hyperparameter earlyStopping must be a boolean, got ${String(r.earlyStopping)}`);
  if (!(r.packing === "auto" || typeof r.packing === "boolean")) throw new Error(`hyperparameter packing must be "auto", true or false, got ${String(r.packing)}`);
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The optimizer side of a run: parameters, AdamW, the schedule. */
export interface TrainState {
  params: LoraParams;
  optimizer: AdamW;
  lr: (step: number) => number;
  config: DecoderConfig;
  /** LoRA dropout on the training steps (absent: p = 0, the graph has no mask inputs). */
  dropout?: DropoutSpec;
}

/** `initial`: the parameters to start from (continuing an adapter); default PEFT's init for `seed`. */
export function createTrainState(config: DecoderConfig, h: ResolvedHyperparameters, seed: number, totalSteps: number, initial?: LoraParams): TrainState {
  const params = initial ? cloneLoraParams(initial) : initLoraParams(config, { targets: h.targetModules, rank: h.rank, alpha: h.alpha }, seed);
  const optimizer = new AdamW(parameters(params).map((p) => p.length), { weightDecay: h.weightDecay });
  const warmupSteps = Math.floor(h.warmupRatio * totalSteps);
  const dropout = h.dropout > 0 ? { p: h.dropout, seed } : undefined;
  return { params, optimizer, lr: cosineWithWarmup({ baseLr: h.learningRate, warmupSteps, totalSteps }), config, dropout };
}

export interface StepOutcome {
  /** Mean loss over the counted tokens of every micro-batch (before the update). */
  loss: number;
  gradNorm: number;
  learningRate: number;
  tokens: number;
}

/** One optimizer step over `microBatches`: accumulate -> clip -> AdamW(lr(step)). Updates `state.params` in place. */
export async function trainStep(runner: StepRunner, state: TrainState, microBatches: readonly Batch[], maxGradNorm: number): Promise<StepOutcome> {
  const params = parameters(state.params);
  const accumulator = new GradientAccumulator(params.map((p) => p.length));
  const feeds = trainingFeeds(state.params, state.config);
  const { dropout } = state;
  let lossSum = 0;
  let tokens = 0;
  for (const [micro, batch] of microBatches.entries()) {
    if (batch.items === 0) continue;
    const masks = dropout ? dropoutMasks(state.params, batch, dropout.p, maskSeed(dropout.seed, state.optimizer.step, micro)) : {};
    const { loss, grads } = await runner.runStep(batch, { ...feeds, ...masks });
    accumulator.add(gradientsFromGraph(state.params, (name) => grads.get(name)!), batch.items);
    lossSum += loss * batch.items;
    tokens += batch.tokens;
  }
  const grads = accumulator.mean();
  const gradNorm = clipGradNorm(grads, maxGradNorm);
  const learningRate = state.lr(state.optimizer.step);
  state.optimizer.update(params, grads, learningRate);
  return { loss: lossSum / accumulator.items, gradNorm, learningRate, tokens };
}

export interface Evaluation {
  loss: number;
  tokenAccuracy: number;
}

/** Mean loss and greedy token accuracy over every counted token of `batches`. */
export async function evaluateLoss(runner: StepRunner, params: LoraParams, config: DecoderConfig, batches: readonly Batch[]): Promise<Evaluation> {
  const feeds = trainingFeeds(params, config);
  let loss = 0;
  let correct = 0;
  let items = 0;
  for (const batch of batches) {
    const r = await runner.evaluate(batch, feeds);
    loss += r.loss * r.items;
    correct += r.correct;
    items += r.items;
  }
  return { loss: loss / items, tokenAccuracy: correct / items };
}

/** The examples of one optimizer step, as micro-batches; steps of an epoch in its seeded order. */
export function epochSteps(examples: readonly EncodedExample[], seed: number, epoch: number, batchSize: number, microBatchSize: number, padId: number, packed = false): Batch[][] {
  const order = epochOrder(examples.length, seed, epoch).map((i) => examples[i]!);
  return chunks(order, batchSize).map((step) => stepBatches(step, microBatchSize, padId, packed));
}

interface Prepared {
  config: DecoderConfig;
  training: EncodedExample[];
  validation: Batch[];
  /** The validation set encoded (packed into `validation` when the run packs). */
  validationEncoded: EncodedExample[];
  validationExamples: ChatExample[];
}

async function prepare(request: TrainRequest, microBatchSize: number): Promise<Prepared> {
  const [config, tokenizer, template] = await Promise.all([loadDecoderConfig(request.modelDir), loadTokenizer(request.modelDir), loadChatTemplate(request.modelDir)]);
  const encoder: ChatEncoder = { tokenizer, template, eosTokenId: config.eosTokenIds[0] ?? tokenizer.eosTokenIds[0] };
  const maxLength = Math.min(request.maxLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings);
  const split = request.validation && request.validation.length > 0 ? { training: request.training, validation: request.validation } : holdOut(request.training, request.seed);
  /** The examples kept (with a counted token within maxLength), each with its encoding. */
  const encode = (examples: ChatExample[], what: string) => {
    const out = examples.flatMap((example) => {
      const encoded = encodeExample(example, encoder, maxLength);
      return encoded ? [{ example, encoded }] : [];
    });
    if (out.length === 0) throw new Error(`no ${what} example has an assistant token within ${maxLength} tokens`);
    return out;
  };
  const validation = encode(split.validation, "validation");
  return {
    config,
    training: encode(split.training, "training").map((k) => k.encoded),
    validation: chunks(validation.map((k) => k.encoded), microBatchSize).map((b) => makeBatch(b, PAD_ID)),
    validationEncoded: validation.map((k) => k.encoded),
    validationExamples: validation.map((k) => k.example),
  };
}

const PAD_ID = 0;

/** Fine-tunes a LoRA adapter on chat examples and returns the best checkpoint's PEFT files. */
export async function trainLora(request: TrainRequest, hooks: TrainHooks = {}): Promise<TrainResult> {
  resolveHyperparameters(request.hyperparameters); // refuses bad values before anything is read
  const microBatchSize = request.microBatchSize ?? 8;
  const resume = request.resume;
  if (resume && resume.fingerprint !== trainFingerprint(request)) throw new Error("the checkpoint to resume belongs to another run (data, hyperparameters, seed or model differ)");
  const data = await prepare(request, microBatchSize);
  const { config } = data;
  const initial = request.initialAdapter ? startingParams(request.initialAdapter, config) : undefined;
  const h = resolveHyperparameters(initial ? continuedHyperparameters(request.hyperparameters, initial.spec) : request.hyperparameters);
  const batchSize = Math.min(h.batchSize, data.training.length);
  const stepsPerEpoch = Math.ceil(data.training.length / batchSize);
  const totalSteps = Math.min(h.maxSteps ?? Infinity, h.epochs * stepsPerEpoch);
  const evalEvery = h.evalEvery ?? Math.max(1, Math.ceil(totalSteps / 10));
  const packed = choosePacking(h.packing, data.training, request.seed, batchSize, microBatchSize);
  if (packed) data.validation = stepBatches(data.validationEncoded, microBatchSize, PAD_ID, true);
  const step = await stepShape(request, data, Math.min(microBatchSize, batchSize), h);
  checkStepMemory(config, step, request.memoryLimitMb);
  const runner = await openRunner(request, config, h.targetModules, h.dropout > 0, packed).catch((e: unknown) => Promise.reject(asOutOfMemory(e, config, step, request.memoryLimitMb)));
  try {
    const state = createTrainState(config, h, request.seed, totalSteps, initial);
    const loop = resume ? restoreRun(state, resume, h) : await startRun(runner, state, data.validation, stoppingPatience(h));
    const { tracker } = loop;
    const baseEvaluation = initial ? await evaluateLoss(runner, withoutDelta(state.params), config, data.validation) : tracker.base;
    let steps = resume?.step ?? 0;
    let trainedTokens = resume?.trainedTokens ?? 0;
    let cancelled = false;
    for (let epoch = resume?.epoch ?? 0; steps < totalSteps && !tracker.stopped && !cancelled; epoch++) {
      const epochBatches = epochSteps(data.training, request.seed, epoch, batchSize, microBatchSize, PAD_ID, packed);
      for (let i = resume && epoch === resume.epoch ? resume.stepInEpoch : 0; i < epochBatches.length; i++) {
        if (steps >= totalSteps || tracker.stopped) break;
        if (hooks.signal?.aborted || hooks.shouldStop?.()) {
          cancelled = true;
          break;
        }
        const started = performance.now();
        const outcome = await trainStep(runner, state, epochBatches[i]!, h.maxGradNorm);
        const seconds = (performance.now() - started) / 1000;
        steps++;
        trainedTokens += outcome.tokens;
        const evaluation = steps % evalEvery === 0 || steps === totalSteps ? await evaluateLoss(runner, state.params, config, data.validation) : undefined;
        if (evaluation) {
          tracker.record(evaluation, state.params, steps);
          loop.history.push({ step: steps, validLoss: evaluation.loss, tokenAccuracy: evaluation.tokenAccuracy, trainLoss: outcome.loss });
        }
        await hooks.onStep?.({
          step: steps,
          totalSteps,
          trainLoss: outcome.loss,
          validLoss: evaluation?.loss,
          tokenAccuracy: evaluation?.tokenAccuracy,
          learningRate: outcome.learningRate,
          gradNorm: outcome.gradNorm,
          tokensPerSecond: outcome.tokens / seconds,
        });
        const epochDone = i === epochBatches.length - 1;
        if (epochDone && hooks.onEpochEnd) {
          const adapter = exportPeftAdapter(state.params, { baseModel: basename(request.modelDir), loraDropout: h.dropout });
          await hooks.onEpochEnd({ epoch: epoch + 1, step: steps, trainLoss: outcome.loss, validLoss: evaluation?.loss, tokenAccuracy: evaluation?.tokenAccuracy, adapter });
        }
        const checkpointDue = request.checkpointEvery === undefined ? evaluation !== undefined : steps % request.checkpointEvery === 0;
        if (checkpointDue && hooks.onCheckpoint) {
          const position = epochDone ? { epoch: epoch + 1, stepInEpoch: 0 } : { epoch, stepInEpoch: i + 1 };
          await hooks.onCheckpoint(snapshot(trainFingerprint(request), state, tracker, loop.history, { step: steps, trainedTokens, ...position }));
        }
      }
    }
    return {
      adapter: exportPeftAdapter(tracker.bestParams, { baseModel: basename(request.modelDir), loraDropout: h.dropout }),
      bestStep: tracker.bestStep,
      steps,
      trainedTokens,
      baseValidLoss: baseEvaluation.loss,
      startValidLoss: tracker.baseLoss,
      bestValidLoss: tracker.bestLoss,
      baseEvaluation,
      bestEvaluation: tracker.best,
      validation: data.validationExamples,
      stoppedEarly: tracker.stopped,
      cancelled,
    };
  } catch (e) {
    throw asOutOfMemory(e, config, step, request.memoryLimitMb);
  } finally {
    await runner.close();
  }
}

/** What a run's checkpoint must match to resume it: its data, resolved hyperparameters, seed and model; `extra` for other methods (DPO). */
export function runFingerprint(request: Omit<TrainRequest, "training" | "validation"> & { training: unknown; validation?: unknown }, extra: Record<string, unknown> = {}): string {
  return requestFingerprint({
    model: basename(request.modelDir),
    training: request.training,
    validation: request.validation ?? null,
    hyperparameters: resolveHyperparameters(request.hyperparameters),
    seed: request.seed,
    microBatchSize: request.microBatchSize ?? 8,
    maxLength: request.maxLength ?? null,
    initialAdapter: request.initialAdapter ? [request.initialAdapter.config, request.initialAdapter.model].map(sha256) : null,
    ...extra,
  });
}

/** What a checkpoint must match to resume this supervised `request`. */
export const trainFingerprint = (request: TrainRequest): string => runFingerprint(request);

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The loop's state as a checkpoint of the run `fingerprint` names. */
export function snapshot(fingerprint: string, state: TrainState, tracker: BestTracker, history: EvaluationRecord[], position: Pick<TrainCheckpoint, "step" | "trainedTokens" | "epoch" | "stepInEpoch">): TrainCheckpoint {
  return {
    fingerprint,
    ...position,
    modules: state.params.modules.map((m) => m.key),
    params: parameters(state.params).map((p) => p.slice()),
    optimizer: state.optimizer.exportState(),
    best: tracker.exportState(),
    history: history.map((e) => ({ ...e })),
  };
}

/** A fresh run: the base model's evaluation (step 0) starts the tracker and the history. */
async function startRun(runner: StepRunner, state: TrainState, validation: readonly Batch[], patience: number): Promise<{ tracker: BestTracker; history: EvaluationRecord[] }> {
  const base = await evaluateLoss(runner, state.params, state.config, validation);
  return { tracker: new BestTracker(base, state.params, patience), history: [{ step: 0, validLoss: base.loss, tokenAccuracy: base.tokenAccuracy }] };
}

/** Puts a checkpoint's parameters and optimizer state into a freshly created `state`; the tracker and history it held. */
export function restoreRun(state: TrainState, resume: TrainCheckpoint, h: ResolvedHyperparameters): { tracker: BestTracker; history: EvaluationRecord[] } {
  const keys = state.params.modules.map((m) => m.key);
  if (keys.length !== resume.modules.length || keys.some((k, i) => k !== resume.modules[i])) throw new Error("the checkpoint's LoRA modules differ from this run's");
  const params = parameters(state.params);
  const copy = (target: Float32Array[], source: Float32Array[]) =>
    target.forEach((p, i) => {
      if (source[i]?.length !== p.length) throw new Error(`the checkpoint's parameter ${i} has ${source[i]?.length} values, expected ${p.length}`);
      p.set(source[i]!);
    });
  copy(params, resume.params);
  state.optimizer = new AdamW(
    params.map((p) => p.length),
    { weightDecay: h.weightDecay },
    resume.optimizer,
  );
  const best = cloneLoraParams(state.params);
  copy(parameters(best), resume.best.params);
  return { tracker: BestTracker.restore(resume.best, best, stoppingPatience(h)), history: resume.history.map((e) => ({ ...e })) };
}

/** Early stopping's patience; off: never (Infinity evaluations). */
export function stoppingPatience(h: ResolvedHyperparameters): number {
  return h.earlyStopping ? h.patience : Number.POSITIVE_INFINITY;
}

/** The largest onnxruntime run of the job, for the memory check. */
async function stepShape(request: TrainRequest, data: Prepared, batch: number, h: ResolvedHyperparameters): Promise<StepShape> {
  const seq = Math.max(...data.training.map((e) => e.ids.length), ...data.validation.map((b) => b.seq));
  return { batch, seq, targets: h.targetModules, rank: h.rank, dropout: h.dropout > 0, weightBytes: await modelWeightBytes(request.modelDir) };
}

async function openRunner(request: TrainRequest, config: DecoderConfig, targets: readonly LoraTarget[], dropout: boolean, packed: boolean): Promise<StepRunner> {
  const store = await openWeights(request.modelDir);
  try {
    const cacheDir = request.cacheDir ?? join(defaultCompileCacheDir(), "training");
    return await openStepRunner({ config, weights: store, targets, cacheDir, threads: request.threads, dropout, packed });
  } finally {
    store.close();
  }
}

/** The best evaluation so far (lowest validation loss) and early stopping's patience count. */
export class BestTracker {
  bestStep = 0;
  bestParams: LoraParams;
  stopped = false;
  private worse = 0;

  constructor(
    readonly base: Evaluation,
    params: LoraParams,
    private readonly patience: number,
    public best: Evaluation = base,
  ) {
    this.bestParams = cloneLoraParams(params);
  }

  get baseLoss(): number {
    return this.base.loss;
  }

  get bestLoss(): number {
    return this.best.loss;
  }

  /** A tracker as `exportState` left it; `bestParams` are the checkpoint's best parameters (owned by the tracker). */
  static restore(state: Omit<BestState, "params">, bestParams: LoraParams, patience: number): BestTracker {
    const tracker = new BestTracker(state.base, bestParams, patience, state.best);
    tracker.bestStep = state.step;
    tracker.stopped = state.stopped;
    tracker.worse = state.worse;
    return tracker;
  }

  exportState(): BestState {
    return { base: { ...this.base }, best: { ...this.best }, step: this.bestStep, worse: this.worse, stopped: this.stopped, params: parameters(this.bestParams).map((p) => p.slice()) };
  }

  record(evaluation: Evaluation, params: LoraParams, step: number): void {
    if (evaluation.loss < this.bestLoss) {
      this.best = evaluation;
      this.bestStep = step;
      this.bestParams = cloneLoraParams(params);
      this.worse = 0;
    } else if (++this.worse >= this.patience) {
      this.stopped = true;
    }
  }
}
