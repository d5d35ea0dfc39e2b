/**
 * OpenAI's fine-tuning API over the Trainer port, mounted at /v1/fine_tuning behind a tenant key:
 * jobs (create, list, retrieve, cancel), their events and checkpoints, in OpenAI's JSON so the official
 * client works unchanged. A create takes OpenAI's body (`method.supervised.hyperparameters`, or the
 * legacy top-level `hyperparameters`; "auto" leaves a value to the trainer) and one extension object,
 * `switchyard`, for the LoRA settings OpenAI has no field for. A job shows the same object back, with
 * `result` (base model vs adapter on the validation set; a DPO job's: reference vs adapter on the
 * validation pairs, with each pair's margin and greedy answers) once it succeeded; `GET /jobs/:id/metrics` is
 * our own: the per-step metrics as columns for charts.
 */
import { Hono } from "hono";
import { z } from "zod";
import type { FineTuningCheckpoint, FineTuningEvent, FineTuningHyperparameters, FineTuningJob, FineTuningJobRequest, FineTuningMetrics, FineTuningResult, PreferenceResult, Trainer, ValidationScores } from "../../ports/trainer.ts";
import type { AppEnv } from "../env.ts";
import { badRequest } from "../errors.ts";
import { describe, jsonBody, queryParams } from "../middleware/body.ts";

const auto = <T extends z.ZodType>(value: T) => z.union([z.literal("auto"), value]);

const Hyperparameters = z
  .object({
    n_epochs: auto(z.number().int().min(1).max(50)),
    batch_size: auto(z.number().int().min(1).max(256)),
    learning_rate_multiplier: auto(z.number().positive()),
  })
  .partial();

/** A supervised job's extra fields: PEFT prompt tuning instead of LoRA (`adapter_type: "prompt_tuning"`). */
const SupervisedHyperparameters = Hyperparameters.extend({
  adapter_type: z.enum(["lora", "prompt_tuning"]),
  num_virtual_tokens: z.number().int().min(1).max(256),
  prompt_tuning_init: z.enum(["text", "random"]),
  prompt_tuning_init_text: z.string().min(1).max(2000),
}).partial();

/** DPO trains LoRA only: `adapter_type` may say so, and "prompt_tuning" is refused rather than ignored. */
const DpoHyperparameters = Hyperparameters.extend({ beta: auto(z.number().positive().max(100)), adapter_type: z.literal("lora") }).partial();

/** The extension: LoRA and schedule settings OpenAI's API has no field for. */
const Extension = z
  .object({
    r: z.number().int().min(1).max(256),
    alpha: z.number().positive(),
    dropout: z.number().min(0).lt(1),
    target_modules: z.array(z.string().min(1)).min(1).max(7),
    learning_rate: z.number().positive().max(1),
    warmup_ratio: z.number().min(0).max(1),
    weight_decay: z.number().min(0).max(1),
    max_steps: z.number().int().min(1),
    eval_every: z.number().int().min(1),
    /** `false` (or `{enabled: false}`) turns it off; `{patience}` sets how many evaluations without improvement stop training. */
    early_stopping: z.union([z.boolean(), z.object({ enabled: z.boolean(), patience: z.number().int().min(1) }).partial().strict()]),
    /** Sequence packing: "auto" (where it saves padding), true, false. */
    packing: z.union([z.literal("auto"), z.boolean()]),
    /** DPO only: "sigmoid" (default) or "ipo". */
    loss_type: z.enum(["sigmoid", "ipo"]),
  })
  .partial()
  .strict();

const CreateJob = z.object({
  model: z.string().min(1),
  training_file: z.string().min(1),
  validation_file: z.string().min(1).nullish(),
  suffix: z.string().min(1).max(64).nullish(),
  seed: z.number().int().min(0).max(2_147_483_647).nullish(),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, "at most 16 keys")
    .nullish(),
  hyperparameters: SupervisedHyperparameters.optional(),
  method: z
    .object({
      type: z.enum(["supervised", "dpo", "reinforcement"]),
      supervised: z.object({ hyperparameters: SupervisedHyperparameters.optional() }).optional(),
      dpo: z.object({ hyperparameters: DpoHyperparameters.optional() }).optional(),
    })
    .optional(),
  integrations: z.array(z.unknown()).nullish(),
  switchyard: Extension.optional(),
});

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().min(1).optional(),
});

/** OpenAI's fine-tuning routes over the trainer. */
export function fineTuningRoutes(trainer: Trainer): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["fine-tuning"];

  app.post("/jobs", describe({ summary: "Create a fine-tuning job (LoRA) over an uploaded `fine-tune` file; `switchyard` holds LoRA settings OpenAI has no field for.", tags }), jsonBody(CreateJob), async (c) => {
    const job = await trainer.submit(jobRequest(c.get("tenant").id, c.req.valid("json")));
    return c.json(jobJson(job));
  });

  app.get("/jobs", describe({ summary: "The caller's fine-tuning jobs, newest first; cursor paging with `after` and `limit`.", tags }), queryParams(ListQuery), async (c) => {
    const page = await trainer.list(c.get("tenant").id, c.req.valid("query"));
    return c.json({ object: "list" as const, data: page.data.map(jobJson), has_more: page.hasMore });
  });

  app.get("/jobs/:id", describe({ summary: "One fine-tuning job.", tags }), async (c) => c.json(jobJson(await trainer.get(c.get("tenant").id, c.req.param("id")))));

  app.post("/jobs/:id/cancel", describe({ summary: "Cancel a job: a queued one at once, a running one at its next step.", tags }), async (c) =>
    c.json(jobJson(await trainer.cancel(c.get("tenant").id, c.req.param("id")))),
  );

  app.get("/jobs/:id/events", describe({ summary: "The job's events, newest first: messages and per-step `metrics`.", tags }), queryParams(ListQuery), async (c) => {
    const page = await trainer.events(c.get("tenant").id, c.req.param("id"), c.req.valid("query"));
    return c.json({ object: "list" as const, data: page.data.map(eventJson), has_more: page.hasMore });
  });

  app.get("/jobs/:id/checkpoints", describe({ summary: "The job's checkpoints (the adapter it published), newest first.", tags }), queryParams(ListQuery), async (c) => {
    const page = await trainer.checkpoints(c.get("tenant").id, c.req.param("id"), c.req.valid("query"));
    const data = page.data.map(checkpointJson);
    return c.json({ object: "list" as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.hasMore });
  });

  app.get("/jobs/:id/metrics", describe({ summary: "Every logged step's metrics in step order, as columns (uPlot's data layout): `step`, `train_loss`, `valid_loss`, ..., and a DPO job's `rewards/*` (null where a step has no value).", tags }), async (c) =>
    c.json(metricsJson(c.req.param("id"), await trainer.metrics(c.get("tenant").id, c.req.param("id")))),
  );

  return app;
}

type CreateBody = z.output<typeof CreateJob>;

/** The port's request from OpenAI's body: `method` wins over the legacy `hyperparameters`; "auto" is unset. */
export function jobRequest(tenantId: string, body: CreateBody): FineTuningJobRequest {
  if (body.method && body.method.type === "reinforcement") throw badRequest(`Fine-tuning method '${body.method.type}' is not supported here; only 'supervised' and 'dpo' (LoRA).`, "method.type", "unsupported_method");
  if (body.integrations && body.integrations.length > 0) throw badRequest("Integrations are not supported here.", "integrations", "unsupported_integrations");
  const dpo = body.method?.type === "dpo";
  const x = body.switchyard ?? {};
  if (!dpo && x.loss_type !== undefined) throw badRequest("switchyard.loss_type applies to method 'dpo' only.", "switchyard.loss_type", "invalid_hyperparameters");
  if (dpo && (x.dropout ?? 0) > 0) throw badRequest("LoRA dropout is not supported with method 'dpo'.", "switchyard.dropout", "invalid_hyperparameters");
  const d = body.method?.dpo?.hyperparameters ?? {};
  const s = (dpo ? undefined : body.method?.supervised?.hyperparameters ?? body.hyperparameters) ?? {};
  const h = dpo ? d : s;
  const given = (v: number | "auto" | undefined) => (v === "auto" ? undefined : v);
  checkPromptTuning(s, x, body.method?.supervised?.hyperparameters ? "method.supervised.hyperparameters" : "hyperparameters");
  const promptTuning = s.adapter_type === "prompt_tuning";
  const hyperparameters: FineTuningHyperparameters = {
    method: dpo ? "dpo" : undefined,
    adapterType: promptTuning ? "prompt_tuning" : undefined,
    numVirtualTokens: s.num_virtual_tokens,
    promptTuningInit: s.prompt_tuning_init,
    promptTuningInitText: s.prompt_tuning_init_text,
    beta: dpo ? given(d.beta) : undefined,
    lossType: x.loss_type,
    nEpochs: given(h.n_epochs),
    batchSize: given(h.batch_size),
    learningRateMultiplier: given(h.learning_rate_multiplier),
    learningRate: x.learning_rate,
    rank: x.r,
    alpha: x.alpha,
    dropout: x.dropout,
    targetModules: x.target_modules,
    warmupRatio: x.warmup_ratio,
    weightDecay: x.weight_decay,
    maxSteps: x.max_steps,
    evalEvery: x.eval_every,
    patience: typeof x.early_stopping === "object" ? x.early_stopping.patience : undefined,
    earlyStopping: typeof x.early_stopping === "boolean" ? x.early_stopping : x.early_stopping?.enabled,
    packing: x.packing,
  };
  return {
    tenantId,
    model: body.model,
    trainingFile: body.training_file,
    validationFile: body.validation_file ?? undefined,
    suffix: body.suffix ?? undefined,
    seed: body.seed ?? undefined,
    metadata: body.metadata ?? undefined,
    hyperparameters: defined(hyperparameters),
  };
}

/** Extension fields a prompt-tuning job has no use for: the LoRA shape, and schedule settings its loop does not have. */
const NOT_FOR_PROMPT_TUNING = ["r", "alpha", "dropout", "target_modules", "warmup_ratio", "weight_decay", "early_stopping", "packing"] as const;

/** Prompt-tuning fields only with `adapter_type: "prompt_tuning"`, an init text only with the "text" init (which needs one), and no LoRA fields beside them. */
function checkPromptTuning(s: z.output<typeof SupervisedHyperparameters>, x: z.output<typeof Extension>, at: string): void {
  const invalid = (message: string, param: string) => badRequest(message, param, "invalid_hyperparameters");
  if (s.adapter_type !== "prompt_tuning") {
    for (const k of ["num_virtual_tokens", "prompt_tuning_init", "prompt_tuning_init_text"] as const) {
      if (s[k] !== undefined) throw invalid(`${k} applies to adapter_type 'prompt_tuning' only.`, `${at}.${k}`);
    }
    return;
  }
  for (const k of NOT_FOR_PROMPT_TUNING) {
    if (x[k] !== undefined) throw invalid(`switchyard.${k} is a LoRA setting; it does not apply to adapter_type 'prompt_tuning'.`, `switchyard.${k}`);
  }
  if (s.prompt_tuning_init === "text" && s.prompt_tuning_init_text === undefined) throw invalid("prompt_tuning_init 'text' needs prompt_tuning_init_text.", `${at}.prompt_tuning_init_text`);
  if (s.prompt_tuning_init === "random" && s.prompt_tuning_init_text !== undefined) throw invalid("prompt_tuning_init_text applies to prompt_tuning_init 'text' only.", `${at}.prompt_tuning_init_text`);
}

const seconds = (ms: number) => Math.floor(ms / 1000);
const secondsOrNull = (ms: number | null) => (ms === null ? null : seconds(ms));

/** OpenAI's FineTuningJob; the LoRA settings given in `switchyard`, as they were asked for. */
export function jobJson(job: FineTuningJob) {
  const h = job.hyperparameters;
  const hyperparameters = { n_epochs: h.nEpochs ?? ("auto" as const), batch_size: h.batchSize ?? ("auto" as const), learning_rate_multiplier: h.learningRateMultiplier ?? ("auto" as const) };
  return {
    id: job.id,
    object: "fine_tuning.job" as const,
    created_at: seconds(job.createdAt),
    error: job.error,
    fine_tuned_model: job.fineTunedModel,
    finished_at: secondsOrNull(job.finishedAt),
    hyperparameters,
    model: job.model,
    organization_id: job.tenantId,
    result_files: [] as string[],
    status: job.status,
    trained_tokens: job.trainedTokens,
    training_file: job.trainingFile,
    validation_file: job.validationFile,
    integrations: null,
    seed: job.seed,
    estimated_finish: secondsOrNull(job.estimatedFinish),
    method: methodJson(h, hyperparameters),
    metadata: job.metadata,
    user_provided_suffix: job.suffix,
    switchyard: { ...extensionJson(h), ...(job.result ? { result: resultJson(job.result) } : {}) },
  };
}

/** OpenAI's `method` as the job was created: supervised, or dpo with β. */
function methodJson(h: FineTuningHyperparameters, hyperparameters: { n_epochs: number | "auto"; batch_size: number | "auto"; learning_rate_multiplier: number | "auto" }) {
  if (h.method === "dpo") return { type: "dpo" as const, dpo: { hyperparameters: { ...hyperparameters, beta: h.beta ?? ("auto" as const) } } };
  if (h.adapterType !== "prompt_tuning") return { type: "supervised" as const, supervised: { hyperparameters } };
  const promptTuning = defined({ adapter_type: "prompt_tuning" as const, num_virtual_tokens: h.numVirtualTokens, prompt_tuning_init: h.promptTuningInit, prompt_tuning_init_text: h.promptTuningInitText });
  return { type: "supervised" as const, supervised: { hyperparameters: { ...hyperparameters, ...promptTuning } } };
}

/** The job's result in snake_case: `base` and `adapter` side by side (a DPO job's: `reference` and `adapter`, and its pairs). */
export function resultJson(r: FineTuningResult | PreferenceResult) {
  if ("method" in r) return preferenceResultJson(r);
  const scores = (s: ValidationScores) => ({ loss: s.loss, perplexity: s.perplexity, token_accuracy: s.tokenAccuracy, rouge_l: s.rougeL, exact_match: s.exactMatch });
  return { validation_examples: r.validationExamples, answered_examples: r.answeredExamples, best_step: r.bestStep, base: scores(r.base), adapter: scores(r.adapter) };
}

function preferenceResultJson(r: PreferenceResult) {
  const scores = (s: PreferenceResult["adapter"]) => ({ loss: s.loss, reward_accuracy: s.rewardAccuracy });
  return {
    method: r.method,
    validation_pairs: r.validationPairs,
    answered_pairs: r.answeredPairs,
    best_step: r.bestStep,
    reference: scores(r.reference),
    adapter: scores(r.adapter),
    mean_margin: r.meanMargin,
    preferred_share: r.preferredShare,
    base_leans_chosen: r.baseLeansChosen,
    adapter_leans_chosen: r.adapterLeansChosen,
    moved_toward_chosen: r.movedTowardChosen,
    moved_toward_rejected: r.movedTowardRejected,
    pairs: r.pairs.map((p) => ({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, margin: p.margin, base: p.base, adapter: p.adapter, moved: p.moved })),
  };
}

/** The series: one array per metric, index-aligned with `step`. */
export function metricsJson(jobId: string, m: FineTuningMetrics) {
  return {
    object: "fine_tuning.job.metrics" as const,
    fine_tuning_job_id: jobId,
    step: m.step,
    train_loss: m.trainLoss,
    valid_loss: m.validLoss,
    valid_mean_token_accuracy: m.validTokenAccuracy,
    learning_rate: m.learningRate,
    grad_norm: m.gradNorm,
    tokens_per_second: m.tokensPerSecond,
    ...m.extra,
  };
}

function extensionJson(h: FineTuningHyperparameters) {
  return defined({
    r: h.rank,
    alpha: h.alpha,
    dropout: h.dropout,
    target_modules: h.targetModules,
    learning_rate: h.learningRate,
    warmup_ratio: h.warmupRatio,
    weight_decay: h.weightDecay,
    max_steps: h.maxSteps,
    eval_every: h.evalEvery,
    early_stopping: earlyStoppingJson(h),
    packing: h.packing,
    loss_type: h.lossType,
  });
}

/** `early_stopping` as it was given: a boolean, or an object with `patience` (and `enabled` when given). */
function earlyStoppingJson(h: FineTuningHyperparameters) {
  if (h.patience === undefined) return h.earlyStopping;
  return h.earlyStopping === undefined ? { patience: h.patience } : { enabled: h.earlyStopping, patience: h.patience };
}

export function eventJson(e: FineTuningEvent) {
  return { object: "fine_tuning.job.event" as const, id: e.id, created_at: seconds(e.createdAt), level: e.level, message: e.message, type: e.type, data: e.data ?? {} };
}

export function checkpointJson(k: FineTuningCheckpoint) {
  return {
    object: "fine_tuning.job.checkpoint" as const,
    id: k.id,
    created_at: seconds(k.createdAt),
    fine_tuned_model_checkpoint: k.fineTunedModel,
    fine_tuning_job_id: k.jobId,
    metrics: k.metrics,
    step_number: k.step,
  };
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
