/** Store rows of jobs, events and checkpoints as the Trainer port's plain data. */
import type { FineTuningCheckpoint, FineTuningEvent, FineTuningHyperparameters, FineTuningJob, FineTuningMetrics, FineTuningResult, PreferenceResult } from "../../ports/trainer.ts";
import type { FineTuneCheckpointRow, FineTuneEventRow, FineTuneJobRow } from "../../services/store/schema.ts";

/** Event ids are the table's integer ids behind a prefix (a cursor compares the number). */
const EVENT_PREFIX = "ftevent_";

export const eventId = (n: number) => `${EVENT_PREFIX}${n}`;

/** The integer behind an event id; undefined when it is not one. */
export function eventNumber(id: string): number | undefined {
  if (!id.startsWith(EVENT_PREFIX)) return undefined;
  const n = Number(id.slice(EVENT_PREFIX.length));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export function toJob(row: FineTuneJobRow): FineTuningJob {
  return {
    id: row.id,
    tenantId: row.tenantId,
    model: row.baseModel,
    status: row.status,
    hyperparameters: row.hyperparameters as FineTuningHyperparameters,
    trainingFile: row.trainingFile,
    validationFile: row.validationFile,
    suffix: row.suffix,
    seed: row.seed,
    metadata: row.metadata ?? null,
    fineTunedModel: row.fineTunedModel,
    trainedTokens: row.trainedTokens,
    error: row.error ?? null,
    result: (row.result as FineTuningResult | PreferenceResult | null) ?? null,
    createdAt: row.createdAt,
    finishedAt: row.finishedAt,
    estimatedFinish: row.status === "running" ? row.estimatedFinish : null,
  };
}

export function toEvent(row: FineTuneEventRow): FineTuningEvent {
  return {
    id: eventId(row.id),
    jobId: row.jobId,
    level: row.level,
    type: row.type,
    message: row.message,
    data: (row.data as Record<string, number | string> | null) ?? null,
    createdAt: row.createdAt,
  };
}

export function toCheckpoint(row: FineTuneCheckpointRow): FineTuningCheckpoint {
  return { id: row.id, jobId: row.jobId, step: row.step, fineTunedModel: row.fineTunedModel, metrics: row.metrics, createdAt: row.createdAt };
}

/** The event `data` key of each metrics column (trainer/jobs/runner.ts writes them). */
const METRIC_KEYS = {
  trainLoss: "train_loss",
  validLoss: "valid_loss",
  validTokenAccuracy: "valid_mean_token_accuracy",
  learningRate: "learning_rate",
  gradNorm: "grad_norm",
  tokensPerSecond: "tokens_per_second",
} as const satisfies Record<Exclude<keyof FineTuningMetrics, "step" | "extra">, string>;

/**
 * `metrics` events' data (in the order written) as columns in step order. A step logged twice (a job
 * restarted by another trainer logs its steps again) keeps its latest event.
 */
export function metricsSeries(data: ReadonlyArray<Record<string, unknown> | null>): FineTuningMetrics {
  const byStep = new Map<number, Record<string, unknown>>();
  for (const d of data) {
    const step = d?.step;
    if (d && typeof step === "number" && Number.isSafeInteger(step)) byStep.set(step, d);
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const column = (key: string) => steps.map((s) => finiteOrNull(byStep.get(s)![key]));
  const series = { step: steps } as FineTuningMetrics;
  for (const [field, key] of Object.entries(METRIC_KEYS) as [keyof typeof METRIC_KEYS, string][]) series[field] = column(key);
  const known = new Set<string>(["step", "total_steps", ...Object.values(METRIC_KEYS)]);
  const others = [...new Set(steps.flatMap((s) => Object.entries(byStep.get(s)!).flatMap(([k, v]) => (!known.has(k) && typeof v === "number" ? [k] : []))))].sort();
  if (others.length > 0) series.extra = Object.fromEntries(others.map((k) => [k, column(k)]));
  return series;
}

const finiteOrNull = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
