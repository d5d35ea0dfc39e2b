/**
 * The trainer port, shaped after OpenAI's fine-tuning API (jobs, events, checkpoints). Submitting
 * queues a job over an uploaded training file (the Files port); a trainer process runs it and
 * publishes the adapter through the AdapterCatalog. Another tenant's job is not_found, never forbidden.
 */

export type FineTuningStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** What a job trains with; unset fields take the trainer's defaults (OpenAI's "auto"). */
export interface FineTuningHyperparameters {
  nEpochs?: number;
  batchSize?: number;
  learningRateMultiplier?: number;
  /** Extensions (the `switchyard` object of a create request). */
  learningRate?: number;
  /** LoRA rank and alpha of the adapter trained. */
  rank?: number;
  alpha?: number;
  /** LoRA dropout probability in [0, 1) on the adapter's branch during training (PEFT's lora_dropout); default 0. */
  dropout?: number;
  targetModules?: string[];
  warmupRatio?: number;
  weightDecay?: number;
  maxSteps?: number;
  evalEvery?: number;
  /** Early stopping: evaluations without a better validation loss before training stops. */
  patience?: number;
}

export interface FineTuningJobRequest {
  tenantId: string;
  /**
   * The base model, or an adapter to continue: `BASE:ADAPTER` or `ADAPTER` (a name, `name@version` or an
   * id, as chat's `model`). Its A/B start the training and its r, alpha and targets are kept (conflicting
   * hyperparameters: invalid_request); the job stores it pinned, `BASE:<adapter id>`, and publishes the
   * result as the adapter's next version unless `suffix` names another.
   */
  model: string;
  /** The tenant's `fine-tune` file ids (the Files port). */
  trainingFile: string;
  validationFile?: string;
  hyperparameters?: FineTuningHyperparameters;
  /** Name of the adapter the job publishes; default derived from the job id. */
  suffix?: string;
  seed?: number;
  metadata?: Record<string, string>;
}

export interface FineTuningError {
  code: string;
  message: string;
  /** The request field at fault (`training_file`), else null. */
  param: string | null;
}

export interface FineTuningJob {
  id: string;
  tenantId: string;
  model: string;
  status: FineTuningStatus;
  hyperparameters: FineTuningHyperparameters;
  trainingFile: string;
  validationFile: string | null;
  suffix: string | null;
  seed: number;
  metadata: Record<string, string> | null;
  /** The adapter published when the job succeeded, as chat's `model` names it (`name@version`). */
  fineTunedModel: string | null;
  trainedTokens: number | null;
  error: FineTuningError | null;
  /** Unix ms. */
  createdAt: number;
  finishedAt: number | null;
  estimatedFinish: number | null;
}

export interface FineTuningEvent {
  id: string;
  jobId: string;
  level: "info" | "warn" | "error";
  /** `metrics`: one training step's numbers in `data` (step, train_loss, valid_loss, ...). */
  type: "message" | "metrics";
  message: string;
  data: Record<string, number | string> | null;
  createdAt: number;
}

export interface FineTuningCheckpoint {
  id: string;
  jobId: string;
  step: number;
  /** The adapter this checkpoint was published as (usable as `model`). */
  fineTunedModel: string;
  /** OpenAI's names: step, train_loss, valid_loss, full_valid_loss, ... */
  metrics: Record<string, number>;
  createdAt: number;
}

export interface Page {
  /** Most items returned (default 20, as OpenAI). */
  limit?: number;
  /** The id after which the page starts (OpenAI's `after`); invalid_request when there is no such id. */
  after?: string;
}

export interface PageOf<T> {
  data: T[];
  hasMore: boolean;
}

/** Lists are newest first, as OpenAI's. */
export interface Trainer {
  /** Checks the files (the tenant's own) and the model, and queues the job. */
  submit(request: FineTuningJobRequest): Promise<FineTuningJob>;
  get(tenantId: string, jobId: string): Promise<FineTuningJob>;
  list(tenantId: string, page?: Page): Promise<PageOf<FineTuningJob>>;
  /** A queued job is cancelled at once; a running one when its trainer next checks (within a step). invalid_request when already finished. */
  cancel(tenantId: string, jobId: string): Promise<FineTuningJob>;
  events(tenantId: string, jobId: string, page?: Page): Promise<PageOf<FineTuningEvent>>;
  checkpoints(tenantId: string, jobId: string, page?: Page): Promise<PageOf<FineTuningCheckpoint>>;
}
