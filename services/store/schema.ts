import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import type { EvalArm, EvalItem, EvalResult, EvalRunSpec } from "../../ports/evals.ts";
import type { AlertDelivery } from "../../ports/monitors.ts";

/**
 * The one schema of Switchyard, shared by better-sqlite3 (embedded) and D1 (Workers).
 * Times are unix milliseconds; ids are prefixed random strings (see ids.ts).
 * JSON columns hold small objects only; large payloads live on disk under the data directory.
 */

const createdAt = () => integer("created_at").notNull().default(sql`(unixepoch() * 1000)`);

export const tenants = sqliteTable("tenants", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  disabled: integer("disabled", { mode: "boolean" }).notNull().default(false),
  /** Tenant settings (default adapter, default strategy, system prompt, ...), validated by edge/tenant-settings.ts. */
  settings: text("settings", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
  /** Admin-set limits (rate limits, quotas), validated by edge/tenant-settings.ts. */
  limits: text("limits", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
  createdAt: createdAt(),
});

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    /** null for admin keys. */
    tenantId: text("tenant_id").references(() => tenants.id),
    name: text("name").notNull().default(""),
    /** First characters of the key, shown in listings so a user can tell keys apart. */
    prefix: text("prefix").notNull(),
    /** SHA-256 of the whole key, hex. */
    hash: text("hash").notNull(),
    role: text("role", { enum: ["admin", "tenant"] }).notNull(),
    revokedAt: integer("revoked_at"),
    lastUsedAt: integer("last_used_at"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("api_keys_hash_idx").on(t.hash), index("api_keys_tenant_idx").on(t.tenantId)],
);

export const adapters = sqliteTable(
  "adapters",
  {
    id: text("id").primaryKey(),
    /** null for public adapters. */
    tenantId: text("tenant_id").references(() => tenants.id),
    name: text("name").notNull(),
    version: integer("version").notNull().default(1),
    baseModel: text("base_model").notNull(),
    rank: integer("rank").notNull(),
    alpha: real("alpha").notNull(),
    targetModules: text("target_modules", { mode: "json" }).$type<string[]>().notNull(),
    /** "lora", or "prompt_tuning" (rank, alpha and target_modules are then 0, 0, []). */
    kind: text("kind", { enum: ["lora", "prompt_tuning"] }).notNull().default("lora"),
    /** A prompt-tuning adapter's virtual tokens; null for LoRA. */
    numVirtualTokens: integer("num_virtual_tokens"),
    /** Path relative to the data directory. */
    path: text("path").notNull(),
    /** Where the files were loaded from (POST /v1/load_lora_adapter's lora_path); null for uploads. */
    sourcePath: text("source_path"),
    sha256: text("sha256").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    status: text("status", { enum: ["ready", "deleted"] }).notNull().default("ready"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("adapters_tenant_name_version_idx").on(t.tenantId, t.name, t.version)],
);

export const documents = sqliteTable(
  "documents",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    title: text("title").notNull(),
    format: text("format").notNull(),
    sha256: text("sha256").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    status: text("status", { enum: ["queued", "processing", "ready", "failed"] }).notNull(),
    progress: real("progress").notNull().default(0),
    error: text("error"),
    warning: text("warning"),
    chunkCount: integer("chunk_count").notNull().default(0),
    /** The chunking the upload asked for (the tenant's settings then), so an ingestion resumed after a restart obeys it. */
    chunkSize: integer("chunk_size"),
    chunkOverlap: integer("chunk_overlap"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("documents_tenant_sha_idx").on(t.tenantId, t.sha256), index("documents_tenant_idx").on(t.tenantId)],
);

export const chunks = sqliteTable(
  "chunks",
  {
    /** Integer id doubles as the hnswlib label and the FTS5 rowid. */
    id: integer("id").primaryKey({ autoIncrement: true }),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    documentId: text("document_id").notNull().references(() => documents.id, { onDelete: "cascade" }),
    position: integer("position").notNull(),
    text: text("text").notNull(),
    headingPath: text("heading_path", { mode: "json" }).$type<string[]>().notNull().default(sql`'[]'`),
    startOffset: integer("start_offset").notNull(),
    endOffset: integer("end_offset").notNull(),
    tokenCount: integer("token_count").notNull(),
  },
  (t) => [index("chunks_document_idx").on(t.documentId), index("chunks_tenant_idx").on(t.tenantId)],
);

/** Uploaded files (OpenAI's Files API): the row is the metadata, the bytes are on disk (services/files/blob-store.ts). */
export const files = sqliteTable(
  "files",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    filename: text("filename").notNull(),
    purpose: text("purpose", { enum: ["fine-tune"] }).notNull(),
    bytes: integer("bytes").notNull(),
    sha256: text("sha256").notNull(),
    /** Training data: how many examples and tokens (after the chat template) validation counted. */
    examples: integer("examples").notNull(),
    tokens: integer("tokens").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("files_tenant_created_idx").on(t.tenantId, t.createdAt, t.id)],
);

/**
 * Fine-tuning jobs (OpenAI's fine_tuning.job): the queue the trainer process claims from. A worker owns
 * a running job while `lease_expires_at` is in the future (its heartbeat moves it on); an expired lease
 * makes the job claimable again (trainer/jobs/queue.ts).
 */
export const fineTuneJobs = sqliteTable(
  "fine_tune_jobs",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    baseModel: text("base_model").notNull(),
    status: text("status", { enum: ["queued", "running", "succeeded", "failed", "cancelled"] }).notNull(),
    hyperparameters: text("hyperparameters", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    trainingFile: text("training_file").notNull(),
    validationFile: text("validation_file"),
    /** The adapter name the job publishes (null: derived from the id). */
    suffix: text("suffix"),
    seed: integer("seed").notNull().default(0),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, string>>(),
    resultAdapterId: text("result_adapter_id").references(() => adapters.id),
    /** How chat's `model` names the result: `name@version`. */
    fineTunedModel: text("fine_tuned_model"),
    trainedTokens: integer("trained_tokens"),
    /** JSON `{code, message, param}` of a failed job. */
    error: text("error", { mode: "json" }).$type<{ code: string; message: string; param: string | null }>(),
    /** JSON report of a succeeded job (ports/trainer.ts FineTuningResult): base model and adapter on the validation set. */
    result: text("result", { mode: "json" }).$type<Record<string, unknown>>(),
    /** Set by a cancel of a running job; the runner stops at its next step. */
    cancelRequested: integer("cancel_requested", { mode: "boolean" }).notNull().default(false),
    leaseOwner: text("lease_owner"),
    leaseExpiresAt: integer("lease_expires_at"),
    /** How many times a worker claimed it (more than 1: restarted after a dead trainer). */
    attempts: integer("attempts").notNull().default(0),
    estimatedFinish: integer("estimated_finish"),
    createdAt: createdAt(),
    finishedAt: integer("finished_at"),
  },
  (t) => [index("fine_tune_jobs_tenant_idx").on(t.tenantId), index("fine_tune_jobs_status_idx").on(t.status, t.createdAt)],
);

export const fineTuneEvents = sqliteTable(
  "fine_tune_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    jobId: text("job_id").notNull().references(() => fineTuneJobs.id, { onDelete: "cascade" }),
    level: text("level", { enum: ["info", "warn", "error"] }).notNull().default("info"),
    type: text("type", { enum: ["message", "metrics"] }).notNull().default("message"),
    message: text("message").notNull(),
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>(),
    createdAt: createdAt(),
  },
  (t) => [index("fine_tune_events_job_idx").on(t.jobId)],
);

/** A job's published checkpoints (today the final one, at the best step), OpenAI's fine_tuning.job.checkpoint. */
export const fineTuneCheckpoints = sqliteTable(
  "fine_tune_checkpoints",
  {
    id: text("id").primaryKey(),
    jobId: text("job_id").notNull().references(() => fineTuneJobs.id, { onDelete: "cascade" }),
    step: integer("step").notNull(),
    /** The `model` that serves it (`name@version`). */
    fineTunedModel: text("fine_tuned_model").notNull(),
    metrics: text("metrics", { mode: "json" }).$type<Record<string, number>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("fine_tune_checkpoints_job_idx").on(t.jobId)],
);

/**
 * A tenant's blind-compare choices (the playground): the prompt's messages and two answers, the one
 * preferred and the other, each with the arm (strategy) that produced it. Downloaded as DPO pairs.
 */
export const preferencePairs = sqliteTable(
  "preference_pairs",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    messages: text("messages", { mode: "json" }).$type<Array<{ role: string; content: string }>>().notNull(),
    chosenArm: text("chosen_arm").notNull(),
    chosenContent: text("chosen_content").notNull(),
    rejectedArm: text("rejected_arm").notNull(),
    rejectedContent: text("rejected_content").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("preference_pairs_tenant_idx").on(t.tenantId, t.createdAt)],
);

/** Evaluation test sets (the items, at most a few MB, inline as JSON). */
export const evalDatasets = sqliteTable(
  "eval_datasets",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    name: text("name").notNull(),
    items: text("items", { mode: "json" }).$type<EvalItem[]>().notNull(),
    itemCount: integer("item_count").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("eval_datasets_tenant_idx").on(t.tenantId, t.createdAt)],
);

/** Evaluation runs: the spec as asked, the status and how many item × arm results are stored. */
export const evalRuns = sqliteTable(
  "eval_runs",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    spec: text("spec", { mode: "json" }).$type<EvalRunSpec>().notNull(),
    status: text("status", { enum: ["queued", "running", "succeeded", "failed", "cancelled"] }).notNull().default("queued"),
    total: integer("total").notNull(),
    done: integer("done").notNull().default(0),
    error: text("error"),
    createdAt: createdAt(),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
  },
  (t) => [index("eval_runs_tenant_idx").on(t.tenantId, t.createdAt), index("eval_runs_status_idx").on(t.status)],
);

/** One row per run, item and arm: written once, when that item × arm finishes (what a resumed run skips). */
export const evalResults = sqliteTable(
  "eval_results",
  {
    runId: text("run_id").notNull().references(() => evalRuns.id, { onDelete: "cascade" }),
    item: integer("item").notNull(),
    arm: integer("arm").notNull(),
    result: text("result", { mode: "json" }).$type<EvalResult>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.item, t.arm] })],
);

export const evalEvents = sqliteTable(
  "eval_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    runId: text("run_id").notNull().references(() => evalRuns.id, { onDelete: "cascade" }),
    level: text("level", { enum: ["info", "warn", "error"] }).notNull().default("info"),
    message: text("message").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("eval_events_run_idx").on(t.runId)],
);

/**
 * Served chat completions, kept for feedback and input drift (pruned after the retention period, see
 * ports/feedback.ts): who served what, the last user message (cut to 2,000 characters) and at most one
 * rating, which a later rating replaces.
 */
export const chatResponses = sqliteTable(
  "chat_responses",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    strategy: text("strategy").notNull(),
    /** The adapter as responses name it (`name@version`); "" for none. */
    adapter: text("adapter").notNull().default(""),
    prompt: text("prompt").notNull(),
    rating: text("rating", { enum: ["up", "down"] }),
    comment: text("comment"),
    ratedAt: integer("rated_at"),
    createdAt: createdAt(),
  },
  (t) => [index("chat_responses_tenant_idx").on(t.tenantId, t.adapter, t.createdAt), index("chat_responses_created_idx").on(t.createdAt)],
);

/** Monitors: a test set re-run on a schedule through one arm, against a baseline run. */
export const evalMonitors = sqliteTable(
  "eval_monitors",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    datasetId: text("dataset_id").notNull(),
    arm: text("arm", { mode: "json" }).$type<EvalArm>().notNull(),
    everyMs: integer("every_ms").notNull(),
    thresholds: text("thresholds", { mode: "json" }).$type<Record<string, number>>().notNull().default(sql`'{}'`),
    /** Watched for significant drops against the baseline. */
    metrics: text("metrics", { mode: "json" }).$type<string[]>().notNull(),
    baselineRunId: text("baseline_run_id"),
    baselinePinned: integer("baseline_pinned", { mode: "boolean" }).notNull().default(false),
    webhookUrl: text("webhook_url"),
    webhookSecret: text("webhook_secret"),
    nextRunAt: integer("next_run_at").notNull(),
    lastRunAt: integer("last_run_at"),
    createdAt: createdAt(),
  },
  (t) => [index("eval_monitors_tenant_idx").on(t.tenantId, t.createdAt), index("eval_monitors_next_idx").on(t.nextRunAt)],
);

/** One scheduled run of a monitor and the metric means it gave. */
export const evalMonitorChecks = sqliteTable(
  "eval_monitor_checks",
  {
    id: text("id").primaryKey(),
    monitorId: text("monitor_id").notNull().references(() => evalMonitors.id, { onDelete: "cascade" }),
    /** null: the check could not start (its test set was deleted). */
    runId: text("run_id"),
    status: text("status", { enum: ["running", "succeeded", "failed"] }).notNull().default("running"),
    adapter: text("adapter"),
    metrics: text("metrics", { mode: "json" }).$type<Record<string, number>>().notNull().default(sql`'{}'`),
    baseline: integer("baseline", { mode: "boolean" }).notNull().default(false),
    error: text("error"),
    createdAt: createdAt(),
    finishedAt: integer("finished_at"),
  },
  (t) => [index("eval_monitor_checks_monitor_idx").on(t.monitorId, t.createdAt), index("eval_monitor_checks_status_idx").on(t.status)],
);

export const evalMonitorAlerts = sqliteTable(
  "eval_monitor_alerts",
  {
    id: text("id").primaryKey(),
    monitorId: text("monitor_id").notNull().references(() => evalMonitors.id, { onDelete: "cascade" }),
    checkId: text("check_id").notNull(),
    kind: text("kind", { enum: ["threshold", "regression"] }).notNull(),
    metric: text("metric").notNull(),
    value: real("value").notNull(),
    threshold: real("threshold"),
    baseline: real("baseline"),
    p: real("p"),
    adapter: text("adapter"),
    message: text("message").notNull(),
    delivery: text("delivery", { mode: "json" }).$type<AlertDelivery>(),
    createdAt: createdAt(),
  },
  // One alert per check, kind and metric: a check settled again after a crash adds none twice.
  (t) => [index("eval_monitor_alerts_monitor_idx").on(t.monitorId, t.createdAt), uniqueIndex("eval_monitor_alerts_check_idx").on(t.checkId, t.kind, t.metric)],
);

export const usage = sqliteTable(
  "usage",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    /** Minute bucket (unix ms floored to the minute): one row per tenant, bucket, strategy and adapter. */
    bucket: integer("bucket").notNull(),
    strategy: text("strategy").notNull(),
    adapter: text("adapter").notNull().default(""),
    requests: integer("requests").notNull().default(0),
    promptTokens: integer("prompt_tokens").notNull().default(0),
    completionTokens: integer("completion_tokens").notNull().default(0),
  },
  (t) => [uniqueIndex("usage_key_idx").on(t.tenantId, t.bucket, t.strategy, t.adapter)],
);

export type Tenant = typeof tenants.$inferSelect;
export type ApiKey = typeof apiKeys.$inferSelect;
export type Adapter = typeof adapters.$inferSelect;
export type DocumentRow = typeof documents.$inferSelect;
export type ChunkRow = typeof chunks.$inferSelect;
export type FileRow = typeof files.$inferSelect;
export type FineTuneJobRow = typeof fineTuneJobs.$inferSelect;
export type FineTuneEventRow = typeof fineTuneEvents.$inferSelect;
export type FineTuneCheckpointRow = typeof fineTuneCheckpoints.$inferSelect;
export type PreferencePairRow = typeof preferencePairs.$inferSelect;
export type EvalDatasetRow = typeof evalDatasets.$inferSelect;
export type EvalRunRow = typeof evalRuns.$inferSelect;
export type ChatResponseRow = typeof chatResponses.$inferSelect;
export type EvalMonitorRow = typeof evalMonitors.$inferSelect;
export type EvalMonitorCheckRow = typeof evalMonitorChecks.$inferSelect;
export type EvalMonitorAlertRow = typeof evalMonitorAlerts.$inferSelect;
