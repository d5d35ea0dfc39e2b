/**
 * The trainer port, shaped after OpenAI's fine-tuning API (jobs, events, checkpoints) for the trainer
 * service. No plane implements it yet: hosts without one answer `plane_unavailable`.
 */

export type FineTuningStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface FineTuningHyperparameters {
  nEpochs?: number;
  batchSize?: number;
  learningRateMultiplier?: number;
  /** LoRA rank and alpha of the adapter trained. */
  rank?: number;
  alpha?: number;
  targetModules?: string[];
}

export interface FineTuningJobRequest {
  tenantId: string;
  /** The base model (or `BASE:ADAPTER` to continue an adapter). */
  model: string;
  /** Chat examples, one JSON object per line (OpenAI's fine-tuning JSONL). */
  trainingFile: Uint8Array;
  validationFile?: Uint8Array;
  hyperparameters?: FineTuningHyperparameters;
  /** Name of the adapter the job publishes; default derived from the job id. */
  suffix?: string;
  seed?: number;
}

export interface FineTuningJob {
  id: string;
  tenantId: string;
  model: string;
  status: FineTuningStatus;
  hyperparameters: FineTuningHyperparameters;
  /** The adapter published when the job succeeded. */
  fineTunedModel: string | null;
  trainedTokens: number | null;
  error: { code: string; message: string } | null;
  /** Unix ms. */
  createdAt: number;
  finishedAt: number | null;
}

export interface FineTuningEvent {
  id: string;
  level: "info" | "warn" | "error";
  message: string;
  /** Step metrics (step, train_loss, ...) or progress. */
  data: Record<string, number | string> | null;
  createdAt: number;
}

export interface FineTuningCheckpoint {
  id: string;
  jobId: string;
  step: number;
  /** The adapter this checkpoint was published as (usable as `model`). */
  adapter: string;
  metrics: Record<string, number>;
  createdAt: number;
}

export interface Page {
  limit?: number;
  /** The id after which the page starts (OpenAI's `after`). */
  after?: string;
}

export interface Trainer {
  submit(request: FineTuningJobRequest): Promise<FineTuningJob>;
  get(tenantId: string, jobId: string): Promise<FineTuningJob>;
  list(tenantId: string, page?: Page): Promise<FineTuningJob[]>;
  cancel(tenantId: string, jobId: string): Promise<FineTuningJob>;
  events(tenantId: string, jobId: string, page?: Page): Promise<FineTuningEvent[]>;
  checkpoints(tenantId: string, jobId: string, page?: Page): Promise<FineTuningCheckpoint[]>;
}
