/**
 * The evaluations port: a tenant's test sets, evaluation runs and their per-item results. A run is
 * every item of a dataset through every arm (a strategy with its adapter, retrieval and sampling);
 * each item × arm result is stored as it finishes, exactly once, so a runner that restarts skips what
 * is already there. A tenant sees only its own datasets and runs (another tenant's: undefined).
 */

export interface EvalMessage {
  role: "system" | "developer" | "user" | "assistant";
  content: string;
}

export interface EvalItem {
  /** 1-based line of the uploaded JSONL. */
  line: number;
  messages: EvalMessage[];
  reference: string;
  /** Documents (ids or titles) that answer the item; present: retrieval recall@k, precision@k and MRR are scored. */
  relevantDocuments?: string[];
}

export interface EvalDataset {
  id: string;
  tenantId: string;
  name: string;
  items: EvalItem[];
  /** Unix ms. */
  createdAt: number;
}

export interface EvalArm {
  strategy: "prompt" | "rag" | "adapter" | "rag+adapter";
  /** The adapter (id or name[@version]) for the adapter strategies; absent: the tenant's default adapter. */
  adapter?: string;
  /** The chat API's `retrieval` field. */
  retrieval?: Record<string, unknown>;
  /** The chat API's sampling fields (temperature, max_tokens, seed, ...). */
  sampling?: Record<string, unknown>;
}

export type EvalRunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** What a run was asked for, fixed at creation. */
export interface EvalRunSpec {
  datasetId: string;
  arms: EvalArm[];
  /** The metric names the report covers (all when absent). */
  metrics?: string[];
  /** Pass when a metric's score is at least its threshold (every threshold must pass). */
  thresholds?: Record<string, number>;
  /** Seeds the bootstrap and the permutation test. */
  seed: number;
  /** The reproducibility block: model, Switchyard version and anything else the creator recorded. */
  environment: Record<string, unknown>;
}

export interface EvalRun {
  id: string;
  tenantId: string;
  spec: EvalRunSpec;
  status: EvalRunStatus;
  /** Items × arms. */
  total: number;
  /** Results stored so far. */
  done: number;
  error?: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
}

export interface EvalSource {
  documentId: string;
  title: string;
  score: number;
}

/** One item through one arm. */
export interface EvalResult {
  item: number;
  arm: number;
  answer?: string;
  /** Why the item × arm failed (the API's error code and message); then there are no scores. */
  error?: { code: string; message: string };
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  totalMs: number;
  sources: EvalSource[];
  /** The adapter as the response names it (`name@version`). */
  adapter?: string;
  scores: Record<string, number>;
}

export interface EvalEvent {
  id: number;
  createdAt: number;
  level: "info" | "warn" | "error";
  message: string;
}

export interface Evals {
  createDataset(tenantId: string, name: string, items: EvalItem[]): Promise<EvalDataset>;
  /** The tenant's datasets, newest first, without their items. */
  listDatasets(tenantId: string): Promise<Omit<EvalDataset, "items">[]>;
  getDataset(tenantId: string, id: string): Promise<EvalDataset | undefined>;
  deleteDataset(tenantId: string, id: string): Promise<boolean>;

  createRun(tenantId: string, spec: EvalRunSpec, total: number): Promise<EvalRun>;
  listRuns(tenantId: string): Promise<EvalRun[]>;
  getRun(tenantId: string, id: string): Promise<EvalRun | undefined>;
  /** Cancels a queued or running run; the run as it now stands (unchanged when it had finished). */
  cancelRun(tenantId: string, id: string): Promise<EvalRun | undefined>;

  /** Every tenant's queued and running runs, oldest first: what a runner (re)starts. */
  unfinishedRuns(): Promise<EvalRun[]>;
  setStatus(runId: string, status: EvalRunStatus, error?: string): Promise<void>;
  /** Stores one result; a second one for the same item × arm is ignored. Counts it in `done`. */
  recordResult(runId: string, result: EvalResult): Promise<void>;
  /** The run's results, by item then arm. */
  results(runId: string): Promise<EvalResult[]>;
  addEvent(runId: string, level: EvalEvent["level"], message: string): Promise<void>;
  /** Events after `after` (an event id), oldest first. */
  events(runId: string, after?: number): Promise<EvalEvent[]>;
}
