/**
 * The trainer port, shaped after OpenAI's fine-tuning API (jobs, events, checkpoints). Submitting
 * queues a job over an uploaded training file (the Files port); a trainer process runs it and
 * publishes the adapter through the AdapterCatalog. Another tenant's job is not_found, never forbidden.
 */

export type FineTuningStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** What a job trains with; unset fields take the trainer's defaults (OpenAI's "auto"). */
export interface FineTuningHyperparameters {
  /** OpenAI's `method.type`: "supervised" (default) or "dpo" (preference pairs; trainer/dpo/). */
  method?: "supervised" | "dpo";
  /** What a supervised job trains: a LoRA adapter (default) or PEFT prompt tuning (trainer/prompt-tuning.ts; no LoRA fields then). */
  adapterType?: "lora" | "prompt_tuning";
  /** Prompt tuning: virtual tokens trained (default 8), and their init: "text" (the embeddings of `promptTuningInitText`'s tokens; the default when a text is given) or "random". */
  numVirtualTokens?: number;
  promptTuningInit?: "text" | "random";
  promptTuningInitText?: string;
  /** DPO: β (default 0.1) and the loss ("sigmoid", default, or "ipo"). */
  beta?: number;
  lossType?: "sigmoid" | "ipo";
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
  /** Early stopping on (default) or off: false trains every step (the best evaluated step is still what is published). */
  earlyStopping?: boolean;
  /** Sequence packing of short examples into shared rows: "auto" (default: where it saves padding), or forced on/off. */
  packing?: "auto" | boolean;
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

/** One model's scores on the validation set, in a job's result. */
export interface ValidationScores {
  /** Mean cross-entropy per counted (assistant) token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Share of counted tokens whose greedy next token is the label. */
  tokenAccuracy: number;
  /** Means over the examples answered: ROUGE-L F and exact match (services/evaluation/metrics.ts) of greedy answers against the reference assistant turns; null when none was answered. */
  rougeL: number | null;
  exactMatch: number | null;
}

/** A succeeded job's report: the base model and the served (best) adapter side by side on the validation set. */
export interface FineTuningResult {
  /** Validation examples evaluated (loss and accuracy cover all of them). */
  validationExamples: number;
  /** Of those, how many were answered greedily (the first ones, up to the report's cap). */
  answeredExamples: number;
  /** The step of the checkpoint served (0: nothing beat the base model). */
  bestStep: number;
  base: ValidationScores;
  adapter: ValidationScores;
}

/** One validation pair in a DPO job's result. */
export interface PreferencePairResult {
  /** The pair's prompt: its last user message. */
  prompt: string;
  chosen: string;
  rejected: string;
  /** The served adapter's log-prob margin over the reference, (π_c − π_r) − (ref_c − ref_r): > 0 when it prefers the chosen answer more than the reference does. */
  margin: number;
  /** Greedy answers of the base model (the reference) and of the adapter, continued from where the two answers part (their shared first words); null when the pair was not answered (past the report's cap, or no room in the context). */
  base: string | null;
  adapter: string | null;
  /** How the adapter's answer moved from the base's, by ROUGE-L F to the chosen minus to the rejected answer: toward the chosen, toward the rejected, or neither (also when not answered). */
  moved: "chosen" | "rejected" | "none";
}

/** A succeeded DPO job's report: the reference (the base model, or the continued adapter) and the served (best) adapter on the validation pairs. */
export interface PreferenceResult {
  method: "dpo";
  validationPairs: number;
  /** Of those, how many were answered greedily (the first ones, up to the report's cap). */
  answeredPairs: number;
  /** The step of the checkpoint served (0: nothing beat the reference). */
  bestStep: number;
  /** Validation DPO loss (log 2 for the reference, under the sigmoid loss) and reward accuracy: the share of pairs whose chosen reward is the higher (TRL's eval_rewards/accuracies; 0 for the reference, whose rewards are all 0). */
  reference: { loss: number; rewardAccuracy: number };
  adapter: { loss: number; rewardAccuracy: number };
  /** Means over the validation pairs of the adapter's margin over the reference, and the share where it is > 0. */
  meanMargin: number;
  preferredShare: number;
  /** Of the answered pairs: whose greedy answer is closer to the chosen than to the rejected one, base and adapter; and where the adapter's moved either way from the base's. */
  baseLeansChosen: number;
  adapterLeansChosen: number;
  movedTowardChosen: number;
  movedTowardRejected: number;
  /** Every validation pair, in the file's order. */
  pairs: PreferencePairResult[];
}

/** Every logged step's metrics in step order, as columns (index i of each is step[i]); null where a step has no evaluation. */
export interface FineTuningMetrics {
  step: number[];
  trainLoss: (number | null)[];
  validLoss: (number | null)[];
  validTokenAccuracy: (number | null)[];
  learningRate: (number | null)[];
  gradNorm: (number | null)[];
  tokensPerSecond: (number | null)[];
  /** Any other numeric metric the steps logged, by its event name (DPO: `rewards/chosen`, ..., `eval_rewards/margins`); absent when none. */
  extra?: Record<string, (number | null)[]>;
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
  /** Set when the job succeeded and its report was made: a supervised job's, or a DPO job's (`method: "dpo"`). */
  result: FineTuningResult | PreferenceResult | null;
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
  /** The job's `metrics` events as a series for charts: one entry per step (the latest event of a step logged twice, e.g. after a restart). */
  metrics(tenantId: string, jobId: string): Promise<FineTuningMetrics>;
}
