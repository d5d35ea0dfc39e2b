/**
 * Runs one claimed job: reads its training (and validation) file through the Files port, trains with
 * the injected `train` (trainer/train-api.ts), reports every step as a `metrics` event, and publishes
 * the adapter through the AdapterCatalog as the tenant's adapter named `suffix` (default `ft-<id tail>`),
 * then reports base model vs adapter on the validation set (`report`, trainer/report.ts; a DPO job's
 * `reportDpo`, trainer/dpo/report.ts: reference vs adapter on the validation pairs) into the job's result. A report that fails leaves the job succeeded, without a result, and says why in a warning event.
 * A supervised job with `adapterType: "prompt_tuning"` trains with trainer/prompt-tuning-job.ts instead:
 * metrics events as SFT's, the best prompt published once at the end, a summary event, no result report,
 * no state or epoch checkpoints.
 *
 * Crash recovery: with `checkpointDir`, the loop's state is written every `checkpointEvery` steps
 * (default: at each evaluation) to `<checkpointDir>/<job id>/` (trainer/checkpoint.ts: atomic files,
 * the 2 newest kept). A claimed job that has one (its trainer died, or handed it back) resumes from the
 * newest readable file whose job id and request fingerprint (data, hyperparameters, seed, model)
 * match, with the event "Resumed from step N"; otherwise it trains from scratch. Steps between that
 * checkpoint and the crash are trained (and reported) again. The folder is deleted once the job's
 * outcome is recorded; a job handed back or lost keeps it.
 *
 * Servable checkpoints (OpenAI's): after each epoch's last step the current adapter is published as
 * the next version of the job's adapter, with a checkpoint row (`name@version`, metrics step,
 * train_loss, valid_loss / full_valid_loss and token accuracy when that step was evaluated) and an
 * event. At the end the BEST parameters are published last, so the bare name resolves to them — unless
 * the best is the newest checkpoint already published (the last epoch's), which is then reused. An
 * epoch replayed after a resume is not published twice: its step already has a row, or, when the
 * earlier attempt died between the upload and the row, the version it uploaded is recorded
 * (`unrecordedVersion`: same bytes, newest of the name).
 * Pruning (as OpenAI keeps the last 3 epoch checkpoints): once the best is published, the epoch
 * versions other than the `KEEP_EPOCH_CHECKPOINTS` newest and the best are deleted from the catalog
 * (AdapterCatalog.delete) with their checkpoint rows, so a 30-epoch job leaves 3 versions, or 4 when the
 * best is an earlier step published on its own. A
 * version that cannot be deleted stays, with a warning event; the job still succeeds.
 *
 * Stopping: a heartbeat runs every `heartbeatMs` and after each step; its answer feeds `shouldStop`, so
 * a cancel is seen within one step (or one heartbeat). "lost" (another worker holds the job now) also
 * aborts `signal`, and the runner then writes nothing more. So does `signal` from the caller (the
 * worker shutting down), after which the worker hands the job back to the queue. A loop that stopped
 * early (patience) is said in one event whose data holds `early_stopping_step` and `best_step`.
 */
import type { AdapterCatalog, AdapterContent, AdapterInfo } from "../../ports/adapters.ts";
import { PlaneError } from "../../ports/errors.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Files } from "../../ports/files.ts";
import type { FineTuningError, FineTuningHyperparameters, FineTuningResult, PreferenceResult } from "../../ports/trainer.ts";
import { parsePreferenceData, type PreferenceExample } from "../../services/files/preference-data.ts";
import { parseTrainingData } from "../../services/files/training-data.ts";
import type { LoraTarget } from "../../services/model/lora-layout.ts";
import type { FineTuneJobRow } from "../../services/store/schema.ts";
import { CheckpointDir } from "../checkpoint.ts";
import type { ReportFn } from "../report.ts";
import type { PreferenceReportFn } from "../dpo/report.ts";
import { dpoFingerprint, trainDpo, type DpoTrainRequest, type DpoTrainResult } from "../dpo/train.ts";
import { PROMPT_TUNING_DEFAULTS, trainPromptTuningJob, type PromptTuningJobRequest, type PromptTuningTrainFn } from "../prompt-tuning-job.ts";
import type { ChatExample, EpochEnd, TrainCheckpoint, TrainFn, TrainHooks, TrainHyperparameters, TrainProgress, TrainRequest, TrainResult } from "../train-api.ts";
import { DEFAULT_HYPERPARAMETERS, trainFingerprint } from "../train.ts";
import type { Heartbeat, JobQueue, Outcome } from "./queue.ts";

export interface RunnerDeps {
  queue: JobQueue;
  files: Files;
  catalog: AdapterCatalog;
  train: TrainFn;
  /** DPO jobs' loop (default trainer/dpo/train.ts `trainDpo`). */
  trainDpo?: DpoTrainFn;
  /** Prompt-tuning jobs' loop (default trainer/prompt-tuning-job.ts `trainPromptTuningJob`). */
  trainPromptTuning?: PromptTuningTrainFn;
  /** The result report (trainer/report.ts `reportTraining`); none: jobs succeed without a result. */
  report?: ReportFn;
  /** A DPO job's result report (trainer/dpo/report.ts `reportPreferences`); none: DPO jobs succeed without a result. */
  reportDpo?: PreferenceReportFn;
  modelDir: string;
  cacheDir?: string;
  /** The memory one training step may use (SWITCHYARD_TRAINER_MEMORY_MB); default: what the machine has available. */
  memoryLimitMb?: number;
  /** How often the lease is renewed while a step runs (well under the lease). */
  heartbeatMs: number;
  /** Where jobs' state checkpoints go (`<data dir>/training`); unset: none, a reclaimed job starts over. */
  checkpointDir?: string;
  /** State checkpoint every this many steps (default: at each evaluation). */
  checkpointEvery?: number;
  now?: () => number;
}

/** Epoch checkpoints kept after a job succeeds (besides the best): OpenAI's number. */
export const KEEP_EPOCH_CHECKPOINTS = 3;

/** The learning rate `learning_rate_multiplier` scales when no explicit `learning_rate` is given: the loop's default. */
export const BASE_LEARNING_RATE = DEFAULT_HYPERPARAMETERS.learningRate;

/** `trainDpo`'s signature. */
export type DpoTrainFn = typeof trainDpo;

/** What happened: the outcome written, or "lost"/"aborted" when the runner wrote none. */
export type RunResult = Outcome["status"] | "lost" | "aborted";

class JobFailure extends Error {
  constructor(readonly error: FineTuningError) {
    super(error.message);
  }
}

export async function runJob(job: FineTuneJobRow, deps: RunnerDeps, signal?: AbortSignal): Promise<RunResult> {
  const watch = new LeaseWatch(deps.queue, job.id, deps.heartbeatMs, signal);
  const states = deps.checkpointDir === undefined ? undefined : new CheckpointDir(join(deps.checkpointDir, job.id), job.id);
  try {
    const outcome = await train(job, deps, watch, states);
    if (watch.state === "lost") return "lost";
    if (signal?.aborted) return "aborted";
    if (!(await deps.queue.finish(job.id, outcome))) return "lost";
    states?.remove();
    return outcome.status;
  } finally {
    watch.stop();
  }
}

async function train(job: FineTuneJobRow, deps: RunnerDeps, watch: LeaseWatch, states: CheckpointDir | undefined): Promise<Outcome> {
  const now = deps.now ?? Date.now;
  try {
    const h = job.hyperparameters as FineTuningHyperparameters;
    const dpo = h.method === "dpo";
    const read = dpo ? readPairs : readExamples;
    const training = await read(deps.files, job.tenantId, job.trainingFile, "training_file");
    const validation = job.validationFile ? await read(deps.files, job.tenantId, job.validationFile, "validation_file") : undefined;
    const start = await startingAdapter(job, deps);
    if (start) await deps.queue.event(job.id, { message: `Continuing adapter ${start.info.name}@${start.info.version} (${start.info.id})` });
    const what = dpo ? "preference pairs (DPO)" : h.adapterType === "prompt_tuning" ? "examples (prompt tuning)" : "examples";
    await deps.queue.event(job.id, { message: `Training on ${training.length} ${what}${validation ? `, validating on ${validation.length}` : ""}` });
    const losses = new Map<number, number>();
    const common = {
      modelDir: deps.modelDir,
      hyperparameters: trainHyperparameters(h),
      seed: job.seed,
      cacheDir: deps.cacheDir,
      checkpointEvery: deps.checkpointEvery,
      initialAdapter: start?.files,
      memoryLimitMb: deps.memoryLimitMb,
    };
    const promptTuning = h.adapterType === "prompt_tuning";
    const run = promptTuning
      ? promptTuningRun({ modelDir: deps.modelDir, cacheDir: deps.cacheDir, seed: job.seed, training: training as ChatExample[], validation: validation as ChatExample[] | undefined, hyperparameters: promptTuningHyperparameters(h) }, deps.trainPromptTuning ?? trainPromptTuningJob)
      : dpo
      ? dpoRun({ ...common, training: training as PreferenceExample[], validation: validation as PreferenceExample[] | undefined, dpo: { beta: h.beta, lossType: h.lossType } }, deps.trainDpo ?? trainDpo)
      : sftRun({ ...common, training: training as ChatExample[], validation: validation as ChatExample[] | undefined }, deps.train);
    const continuedName = start && start.info.tenantId === job.tenantId ? start.info.name : undefined;
    const resume = states && (await findResume(job, deps, states, run.fingerprint()));
    if (resume) {
      run.resume(resume);
      for (const e of resume.history) if (e.trainLoss !== undefined) losses.set(e.step, e.trainLoss);
      await deps.queue.event(job.id, { message: `Resumed from step ${resume.step}`, data: { step: resume.step } });
    }
    const started = now();
    const result = await run.train({
      signal: watch.signal,
      shouldStop: () => watch.state !== "ok",
      onStep: async (p) => {
        losses.set(p.step, p.trainLoss);
        await deps.queue.event(job.id, metricsEvent(p));
        await deps.queue.progress(job.id, estimateFinish(started, now(), p));
        await watch.beat();
      },
      onCheckpoint: async (state) => {
        if (watch.state !== "ok" || !states) return;
        try {
          states.write(state);
        } catch (e) {
          await deps.queue.event(job.id, { level: "warn", message: `The training checkpoint at step ${state.step} could not be written: ${e instanceof Error ? e.message : String(e)}` });
        }
      },
      onEpochEnd: async (e) => {
        if (watch.state === "ok") await publishEpoch(job, deps, e, continuedName);
      },
    });
    if (result.cancelled || watch.state === "cancel") return { status: "cancelled", trainedTokens: result.trainedTokens };
    if (watch.state === "lost") return { status: "cancelled" };
    if (result.stoppedEarly) await deps.queue.event(job.id, earlyStopEvent(result));
    if ("bestRewards" in result) await deps.queue.event(job.id, dpoSummary(result as DpoTrainResult));
    if (promptTuning) await deps.queue.event(job.id, promptTuningSummary(result));
    const makeReport = promptTuning ? () => Promise.resolve(undefined) : dpo ? () => reportDpo(job, deps, result as DpoTrainResult, start?.files) : () => report(job, deps, result);
    return await publish(job, deps, result, losses, continuedName, makeReport);
  } catch (e) {
    if (e instanceof JobFailure) return { status: "failed", error: e.error };
    if (watch.state === "cancel") return { status: "cancelled" };
    return { status: "failed", error: { code: e instanceof PlaneError && e.code ? e.code : "training_failed", message: e instanceof Error ? e.message : String(e), param: null } };
  }
}

/** One job's training, whatever its method: its resume fingerprint, resume, and the loop. */
interface MethodRun {
  fingerprint(): string;
  resume(state: TrainCheckpoint): void;
  train(hooks: TrainHooks): Promise<TrainResult>;
}

function sftRun(request: TrainRequest, train: TrainFn): MethodRun {
  return { fingerprint: () => trainFingerprint(request), resume: (s) => void (request.resume = s), train: (hooks) => train(request, hooks) };
}

function dpoRun(request: DpoTrainRequest, train: DpoTrainFn): MethodRun {
  return { fingerprint: () => dpoFingerprint(request), resume: (s) => void (request.resume = s), train: (hooks) => train(request, hooks) };
}

/** No state checkpoints are written for prompt tuning (trainer/prompt-tuning-job.ts), so none is ever resumed. */
function promptTuningRun(request: PromptTuningJobRequest, train: PromptTuningTrainFn): MethodRun {
  return {
    fingerprint: () => `prompt_tuning:${JSON.stringify({ h: request.hyperparameters, seed: request.seed, model: request.modelDir })}`,
    resume: () => {
      throw new Error("prompt-tuning jobs do not resume from state checkpoints");
    },
    train: (hooks) => train(request, hooks),
  };
}

/** A prompt-tuning job's validation outcome: the initial prompt's loss and the best one's. */
function promptTuningSummary(r: TrainResult) {
  return {
    message: `Prompt tuning validation: loss ${r.baseValidLoss.toFixed(4)} (initial prompt) -> ${r.bestValidLoss.toFixed(4)} (step ${r.bestStep})`,
    data: { best_step: r.bestStep, valid_loss: r.bestValidLoss, base_valid_loss: r.baseValidLoss },
  };
}

/** Early stopping, as an event the playground marks on its loss chart (`early_stopping_step`, `best_step`). */
function earlyStopEvent(r: TrainResult) {
  return { message: `Stopped early after step ${r.steps}: the validation loss stopped improving (best at step ${r.bestStep})`, data: { early_stopping_step: r.steps, best_step: r.bestStep } };
}

/** The DPO job's validation outcome: TRL's eval rewards of the reference and of the best checkpoint, as an event. */
function dpoSummary(r: DpoTrainResult) {
  const positive = r.bestMargins.filter((m) => m > 0).length;
  const margin = (m: Record<string, number>) => (m["eval_rewards/margins"] ?? 0).toFixed(4);
  return {
    message: `DPO validation: loss ${r.baseValidLoss.toFixed(4)} -> ${r.bestValidLoss.toFixed(4)} (step ${r.bestStep}); reward margin ${margin(r.baseRewards)} -> ${margin(r.bestRewards)}; the adapter prefers the chosen answer on ${positive}/${r.bestMargins.length} pairs`,
    data: { best_step: r.bestStep, valid_loss: r.bestValidLoss, base_valid_loss: r.baseValidLoss, ...r.bestRewards, positive_margins: positive, pairs: r.bestMargins.length },
  };
}

/** The newest usable state checkpoint of the job, if any; unreadable or mismatched ones are reported and skipped. */
async function findResume(job: FineTuneJobRow, deps: RunnerDeps, states: CheckpointDir, fingerprint: string): Promise<TrainCheckpoint | undefined> {
  const skipped: string[] = [];
  const latest = states.latest((file, reason) => skipped.push(`${file} (${reason})`));
  for (const s of skipped) await deps.queue.event(job.id, { level: "warn", message: `Ignored an unreadable training checkpoint: ${s}` });
  if (!latest) return undefined;
  if (latest.fingerprint !== fingerprint) {
    await deps.queue.event(job.id, { level: "warn", message: `The checkpoint at step ${latest.step} was made with other data or hyperparameters; training restarts from the beginning` });
    states.remove();
    return undefined;
  }
  return latest;
}

/** An epoch's adapter as the next version of the job's adapter, with its checkpoint row (once per step, across attempts). */
async function publishEpoch(job: FineTuneJobRow, deps: RunnerDeps, e: EpochEnd, continuedName: string | undefined): Promise<void> {
  const rows = await deps.queue.checkpoints(job.id);
  if (rows.some((c) => c.step === e.step)) return;
  const info = (await unrecordedVersion(job, deps, e.adapter, continuedName, rows)) ?? (await uploadAdapter(job, deps, e.adapter, continuedName));
  const fineTunedModel = `${info.name}@${info.version}`;
  const metrics: Record<string, number> = { step: e.step, train_loss: e.trainLoss };
  if (e.validLoss !== undefined) Object.assign(metrics, { valid_loss: e.validLoss, full_valid_loss: e.validLoss });
  if (e.tokenAccuracy !== undefined) Object.assign(metrics, { valid_mean_token_accuracy: e.tokenAccuracy, full_valid_mean_token_accuracy: e.tokenAccuracy });
  await deps.queue.checkpoint(job.id, e.step, fineTunedModel, metrics);
  await deps.queue.event(job.id, { message: `Checkpoint created at step ${e.step} (epoch ${e.epoch}): ${fineTunedModel}`, data: { step: e.step } });
}

/** Named `suffix`, else the continued adapter's name (its next version), else `ft-<id tail>`. */
function adapterName(job: FineTuneJobRow, continuedName: string | undefined): string {
  return job.suffix ?? continuedName ?? defaultAdapterName(job.id);
}

/**
 * The version an earlier attempt of this job published with exactly these bytes but did not record (it
 * died between the upload and the checkpoint row): the name's newest version of the tenant, made since the
 * job was created, holding the same adapter_model.safetensors, named by no checkpoint row of the job. A
 * replayed epoch (the same state, the same seed) is then recorded instead of published twice.
 */
async function unrecordedVersion(job: FineTuneJobRow, deps: RunnerDeps, adapter: TrainResult["adapter"], continuedName: string | undefined, rows: { fineTunedModel: string }[]): Promise<AdapterInfo | undefined> {
  const name = adapterName(job, continuedName);
  const newest = (await deps.catalog.list({ tenantId: job.tenantId })).find((a) => a.name === name && a.tenantId === job.tenantId);
  const jobSecond = Math.floor(job.createdAt / 1000) * 1000; // the catalog stamps whole seconds
  if (!newest || newest.createdAt < jobSecond || rows.some((c) => c.fineTunedModel === `${name}@${newest.version}`)) return undefined;
  return newest.sha256 === createHash("sha256").update(adapter.model).digest("hex") ? newest : undefined;
}

async function uploadAdapter(job: FineTuneJobRow, deps: RunnerDeps, adapter: TrainResult["adapter"], continuedName: string | undefined) {
  const name = adapterName(job, continuedName);
  try {
    return await deps.catalog.upload({ tenantId: job.tenantId, name, source: { config: adapter.config, model: adapter.model } });
  } catch (e) {
    throw new JobFailure({ code: e instanceof PlaneError && e.code ? e.code : "adapter_rejected", message: `The trained adapter could not be published: ${e instanceof Error ? e.message : String(e)}`, param: null });
  }
}

/**
 * Publishes the best adapter last (the bare name then resolves to it) and records its checkpoint;
 * `name@version` is what chat's `model` takes. The newest published checkpoint is reused when it is the best.
 */
async function publish(job: FineTuneJobRow, deps: RunnerDeps, result: TrainResult, losses: Map<number, number>, continuedName: string | undefined, makeReport: () => Promise<JobResult | undefined>): Promise<Outcome> {
  const { reused, ...published } = await publishBest(job, deps, result, losses, continuedName);
  await pruneCheckpoints(job, deps, published.fineTunedModel, reused);
  return { status: "succeeded", ...published, trainedTokens: result.trainedTokens, result: await makeReport() };
}

/** `reused`: the best is the newest epoch checkpoint (no version of its own). */
async function publishBest(job: FineTuneJobRow, deps: RunnerDeps, result: TrainResult, losses: Map<number, number>, continuedName: string | undefined): Promise<{ fineTunedModel: string; adapterId: string; reused: boolean }> {
  const rows = await deps.queue.checkpoints(job.id);
  const newest = rows[0];
  if (newest && newest.step === result.bestStep) {
    const { adapter } = await deps.catalog.resolve(newest.fineTunedModel, job.tenantId);
    if (adapter) return { fineTunedModel: newest.fineTunedModel, adapterId: adapter.id, reused: true };
  }
  const info = (await unrecordedVersion(job, deps, result.adapter, continuedName, rows)) ?? (await uploadAdapter(job, deps, result.adapter, continuedName));
  const fineTunedModel = `${info.name}@${info.version}`;
  await deps.queue.checkpoint(job.id, result.bestStep, fineTunedModel, checkpointMetrics(result, losses.get(result.bestStep)));
  return { fineTunedModel, adapterId: info.id, reused: false };
}

/**
 * Deletes the epoch versions older than the newest `KEEP_EPOCH_CHECKPOINTS` and their rows; never the best
 * (`reused`: the best is the newest epoch's version, one of those kept; else its own row, not an epoch's).
 */
async function pruneCheckpoints(job: FineTuneJobRow, deps: RunnerDeps, best: string, reused: boolean): Promise<void> {
  const epochs = (await deps.queue.checkpoints(job.id)).filter((c) => reused || c.fineTunedModel !== best);
  const old = epochs.slice(KEEP_EPOCH_CHECKPOINTS).filter((c) => c.fineTunedModel !== best);
  let pruned = 0;
  for (const c of old) {
    try {
      // a version the tenant already deleted only leaves its row to remove
      const { adapter } = await deps.catalog.resolve(c.fineTunedModel, job.tenantId).catch((e: unknown) => (e instanceof PlaneError && e.kind === "not_found" ? { adapter: undefined } : Promise.reject(e)));
      if (adapter) await deps.catalog.delete(adapter.id, { tenantId: job.tenantId });
      await deps.queue.deleteCheckpoint(job.id, c.fineTunedModel);
      pruned++;
    } catch (e) {
      await deps.queue.event(job.id, { level: "warn", message: `The old checkpoint ${c.fineTunedModel} could not be deleted: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  if (pruned > 0) await deps.queue.event(job.id, { message: `Deleted ${pruned} older epoch checkpoint(s); kept the last ${KEEP_EPOCH_CHECKPOINTS} and the best` });
}

type JobResult = FineTuningResult | PreferenceResult;

function report(job: FineTuneJobRow, deps: RunnerDeps, result: TrainResult): Promise<JobResult | undefined> {
  const make = deps.report;
  return make ? reported(job, deps, () => make({ modelDir: deps.modelDir, cacheDir: deps.cacheDir, result })) : Promise.resolve(undefined);
}

/** The DPO report; its reference answers with the continued adapter when the job continued one. */
function reportDpo(job: FineTuneJobRow, deps: RunnerDeps, result: DpoTrainResult, reference: AdapterContent | undefined): Promise<JobResult | undefined> {
  const make = deps.reportDpo;
  return make ? reported(job, deps, () => make({ modelDir: deps.modelDir, cacheDir: deps.cacheDir, result, reference })) : Promise.resolve(undefined);
}

/** A report that fails leaves the job without a result, with a warning event. */
async function reported(job: FineTuneJobRow, deps: RunnerDeps, make: () => Promise<JobResult | undefined>): Promise<JobResult | undefined> {
  try {
    return await make();
  } catch (e) {
    await deps.queue.event(job.id, { level: "warn", message: `The result report failed: ${e instanceof Error ? e.message : String(e)}` });
    return undefined;
  }
}

/** The adapter a job continues (its model is `BASE:<adapter id>`, trainer/jobs/store.ts), with its files; undefined for the base model. */
async function startingAdapter(job: FineTuneJobRow, deps: RunnerDeps): Promise<{ info: AdapterInfo; files: AdapterContent } | undefined> {
  if (job.baseModel === (await deps.catalog.baseModel())) return undefined;
  try {
    const { adapter } = await deps.catalog.resolve(job.baseModel, job.tenantId);
    if (!adapter) return undefined;
    return { info: adapter, files: await deps.catalog.content(adapter.id, { tenantId: job.tenantId }) };
  } catch (e) {
    if (e instanceof PlaneError && e.kind === "not_found") throw new JobFailure({ code: "model_not_found", message: `The adapter '${job.baseModel}' this job continues was deleted before training read it.`, param: "model" });
    throw e;
  }
}

/** `ft-` and the job id's last 8 characters. */
export const defaultAdapterName = (jobId: string) => `ft-${jobId.slice(-8)}`;

async function fileBytes(files: Files, tenantId: string, fileId: string, param: string): Promise<Uint8Array> {
  try {
    return await files.content(tenantId, fileId);
  } catch (e) {
    if (e instanceof PlaneError && e.kind === "not_found") throw new JobFailure({ code: "file_not_found", message: `The ${param} '${fileId}' was deleted before training read it.`, param });
    throw e;
  }
}

async function readExamples(files: Files, tenantId: string, fileId: string, param: string): Promise<ChatExample[]> {
  const parsed = parseTrainingData(new TextDecoder().decode(await fileBytes(files, tenantId, fileId, param)));
  const first = parsed.errors[0];
  if (first) throw new JobFailure({ code: "invalid_file", message: `The ${param} has ${parsed.errors.length} bad line(s); line ${first.line}: ${first.reason}.`, param });
  if (parsed.examples.length === 0) throw new JobFailure({ code: "invalid_file", message: `The ${param} holds no examples.`, param });
  return parsed.examples;
}

async function readPairs(files: Files, tenantId: string, fileId: string, param: string): Promise<PreferenceExample[]> {
  const parsed = parsePreferenceData(new TextDecoder().decode(await fileBytes(files, tenantId, fileId, param)));
  const first = parsed.errors[0];
  if (first) throw new JobFailure({ code: "invalid_file", message: `The ${param} has ${parsed.errors.length} bad line(s) for a DPO job; line ${first.line}: ${first.reason}.`, param });
  if (parsed.examples.length === 0) throw new JobFailure({ code: "invalid_file", message: `The ${param} holds no preference pairs.`, param });
  return parsed.examples;
}

/** The port's hyperparameters as the training loop's (the multiplier scales BASE_LEARNING_RATE). */
export function trainHyperparameters(h: FineTuningHyperparameters): TrainHyperparameters {
  const learningRate = h.learningRate ?? (h.learningRateMultiplier === undefined ? undefined : h.learningRateMultiplier * BASE_LEARNING_RATE);
  const out: TrainHyperparameters = {
    epochs: h.nEpochs,
    batchSize: h.batchSize,
    learningRate,
    rank: h.rank,
    alpha: h.alpha,
    dropout: h.dropout,
    targetModules: h.targetModules as LoraTarget[] | undefined,
    warmupRatio: h.warmupRatio,
    weightDecay: h.weightDecay,
    maxSteps: h.maxSteps,
    evalEvery: h.evalEvery,
    patience: h.patience,
    earlyStopping: h.earlyStopping,
    packing: h.packing,
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as TrainHyperparameters;
}

/** A prompt-tuning job's hyperparameters; the multiplier scales the prompt-tuning rate (PROMPT_TUNING_DEFAULTS). */
export function promptTuningHyperparameters(h: FineTuningHyperparameters): PromptTuningJobRequest["hyperparameters"] {
  const learningRate = h.learningRate ?? (h.learningRateMultiplier === undefined ? undefined : h.learningRateMultiplier * PROMPT_TUNING_DEFAULTS.learningRate);
  const out = { epochs: h.nEpochs, batchSize: h.batchSize, learningRate, maxSteps: h.maxSteps, evalEvery: h.evalEvery, numVirtualTokens: h.numVirtualTokens, init: h.promptTuningInit, initText: h.promptTuningInitText };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

function metricsEvent(p: TrainProgress) {
  const data: Record<string, number> = { step: p.step, total_steps: p.totalSteps, train_loss: p.trainLoss, learning_rate: p.learningRate, grad_norm: p.gradNorm, tokens_per_second: p.tokensPerSecond };
  if (p.validLoss !== undefined) data.valid_loss = p.validLoss;
  if (p.tokenAccuracy !== undefined) data.valid_mean_token_accuracy = p.tokenAccuracy;
  Object.assign(data, p.metrics);
  const valid = p.validLoss === undefined ? "" : `, validation loss=${p.validLoss.toFixed(4)}`;
  return { type: "metrics" as const, message: `Step ${p.step}/${p.totalSteps}: training loss=${p.trainLoss.toFixed(4)}${valid}`, data };
}

function estimateFinish(started: number, now: number, p: TrainProgress): number {
  const perStep = (now - started) / Math.max(1, p.step);
  return Math.round(now + perStep * Math.max(0, p.totalSteps - p.step));
}

function checkpointMetrics(result: TrainResult, trainLoss: number | undefined): Record<string, number> {
  const metrics: Record<string, number> = { step: result.bestStep };
  if (trainLoss !== undefined) metrics.train_loss = trainLoss;
  if (Number.isFinite(result.bestValidLoss)) metrics.full_valid_loss = result.bestValidLoss;
  return metrics;
}

/** Renews the lease on a timer and on demand; its state is what the last heartbeat answered. */
class LeaseWatch {
  state: Heartbeat = "ok";
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly queue: JobQueue,
    private readonly jobId: string,
    heartbeatMs: number,
    outer?: AbortSignal,
  ) {
    this.timer = setInterval(() => void this.beat().catch(() => {}), heartbeatMs);
    outer?.addEventListener("abort", () => this.controller.abort(outer.reason), { once: true });
    if (outer?.aborted) this.controller.abort(outer.reason);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async beat(): Promise<void> {
    if (this.state === "lost") return;
    this.state = await this.queue.heartbeat(this.jobId);
    if (this.state === "lost") this.controller.abort(new Error("lease lost"));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
