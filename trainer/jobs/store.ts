/**
 * The Trainer port over the store (better-sqlite3 or D1: every query awaited, no transactions): what
 * the server process does with jobs. It only reads and writes rows; the trainer process
 * (trainer/jobs/worker.ts) claims and runs them.
 *
 * Races: a cancel is one conditional UPDATE per state. A queued job becomes cancelled at once; if a
 * worker claimed it in between, the second UPDATE finds it running and sets `cancel_requested`, which
 * the runner sees at its next heartbeat or step. A running job whose lease has expired (dead trainer)
 * is cancelled at once, since no runner will see the flag. A finished job is not cancellable (400).
 */
import { and, asc, desc, eq, lt, or, type SQL } from "drizzle-orm";
import { ADAPTER_NAME, type AdapterCatalog, type AdapterInfo } from "../../ports/adapters.ts";
import { modelNotFound, PlaneError } from "../../ports/errors.ts";
import type { Files } from "../../ports/files.ts";
import type { FineTuningCheckpoint, FineTuningEvent, FineTuningHyperparameters, FineTuningJob, FineTuningJobRequest, FineTuningMetrics, Page, PageOf, Trainer } from "../../ports/trainer.ts";
import { looksLikePreferenceData } from "../../services/files/preference-data.ts";
import { LORA_TARGETS, type LoraTarget } from "../../services/model/lora-layout.ts";
import { continuedHyperparameters } from "../continue.ts";
import { newId } from "../../services/store/ids.ts";
import { fineTuneCheckpoints, fineTuneEvents, fineTuneJobs, type FineTuneJobRow } from "../../services/store/schema.ts";
import type { StoreDb } from "../../services/store/store-db.ts";
import { appendEvent } from "./events.ts";
import { eventNumber, metricsSeries, toCheckpoint, toEvent, toJob } from "./rows.ts";

export interface StoreTrainerOptions {
  db: StoreDb;
  /** Where training files come from: the job's must be the tenant's own. */
  files: Files;
  /** The base model jobs train (the node serves one). */
  baseModel(): Promise<string>;
  /** Where a job continuing an adapter finds it (`model` naming an adapter); absent: only the base model trains. */
  adapters?: Pick<AdapterCatalog, "resolve">;
  /** Unix ms (default Date.now). */
  now?: () => number;
}

/** OpenAI's default page size. */
export const DEFAULT_PAGE = 20;
export const MAX_PAGE = 100;

const notFound = (id: string) => new PlaneError("not_found", `No such fine-tuning job: '${id}'.`, { code: "fine_tuning_job_not_found" });

export class StoreTrainer implements Trainer {
  private readonly db: StoreDb;
  private readonly now: () => number;

  constructor(private readonly options: StoreTrainerOptions) {
    this.db = options.db;
    this.now = options.now ?? Date.now;
  }

  async submit(request: FineTuningJobRequest): Promise<FineTuningJob> {
    if (request.suffix !== undefined && !ADAPTER_NAME.test(request.suffix)) {
      throw new PlaneError("invalid_request", `Invalid suffix ${JSON.stringify(request.suffix)}: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the adapter).`, { code: "invalid_suffix", param: "suffix" });
    }
    const unknown = request.hyperparameters?.targetModules?.find((m) => !(LORA_TARGETS as readonly string[]).includes(m));
    if (unknown !== undefined) {
      throw new PlaneError("invalid_request", `Unknown target module '${unknown}': expected some of ${LORA_TARGETS.join(", ")}.`, { code: "invalid_target_modules", param: "switchyard.target_modules" });
    }
    const { model, hyperparameters } = await this.checkModel(request);
    const method = hyperparameters.method ?? "supervised";
    await this.checkFile(request.tenantId, request.trainingFile, "training_file", method);
    if (request.validationFile !== undefined) await this.checkFile(request.tenantId, request.validationFile, "validation_file", method);
    const id = newId("ftjob", 24);
    const now = this.now();
    const [row] = await this.db
      .insert(fineTuneJobs)
      .values({
        id,
        tenantId: request.tenantId,
        baseModel: model,
        status: "queued",
        hyperparameters: { ...hyperparameters },
        trainingFile: request.trainingFile,
        validationFile: request.validationFile ?? null,
        suffix: request.suffix ?? null,
        seed: request.seed ?? randomSeed(),
        metadata: request.metadata ?? null,
        createdAt: now,
      })
      .returning();
    await appendEvent(this.db, id, { message: `Created fine-tuning job: ${id}` }, now);
    return toJob(row!);
  }

  async get(tenantId: string, jobId: string): Promise<FineTuningJob> {
    return toJob(await this.row(tenantId, jobId));
  }

  async list(tenantId: string, page: Page = {}): Promise<PageOf<FineTuningJob>> {
    const limit = pageSize(page);
    const cursor = page.after === undefined ? undefined : await this.cursor(tenantId, page.after);
    const rows = await this.db
      .select()
      .from(fineTuneJobs)
      .where(and(eq(fineTuneJobs.tenantId, tenantId), cursor && olderThan(cursor)))
      .orderBy(desc(fineTuneJobs.createdAt), desc(fineTuneJobs.id))
      .limit(limit + 1);
    return { data: rows.slice(0, limit).map(toJob), hasMore: rows.length > limit };
  }

  async cancel(tenantId: string, jobId: string): Promise<FineTuningJob> {
    const now = this.now();
    const mine = and(eq(fineTuneJobs.id, jobId), eq(fineTuneJobs.tenantId, tenantId));
    const [queued] = await this.db
      .update(fineTuneJobs)
      .set({ status: "cancelled", finishedAt: now })
      .where(and(mine, or(eq(fineTuneJobs.status, "queued"), and(eq(fineTuneJobs.status, "running"), lt(fineTuneJobs.leaseExpiresAt, now)))))
      .returning();
    if (queued) {
      await appendEvent(this.db, jobId, { message: "Fine-tuning job cancelled" }, now);
      return toJob(queued);
    }
    const [running] = await this.db.update(fineTuneJobs).set({ cancelRequested: true }).where(and(mine, eq(fineTuneJobs.status, "running"))).returning();
    if (running) {
      await appendEvent(this.db, jobId, { message: "Cancellation requested; the job stops at its next step" }, now);
      return toJob(running);
    }
    const row = await this.row(tenantId, jobId);
    throw new PlaneError("invalid_request", `The job is already ${row.status}; only queued or running jobs can be cancelled.`, { code: "job_not_cancellable" });
  }

  async events(tenantId: string, jobId: string, page: Page = {}): Promise<PageOf<FineTuningEvent>> {
    await this.row(tenantId, jobId);
    const limit = pageSize(page);
    const after = page.after === undefined ? undefined : eventNumber(page.after);
    if (page.after !== undefined && after === undefined) throw badCursor(page.after);
    const rows = await this.db
      .select()
      .from(fineTuneEvents)
      .where(and(eq(fineTuneEvents.jobId, jobId), after === undefined ? undefined : lt(fineTuneEvents.id, after)))
      .orderBy(desc(fineTuneEvents.id))
      .limit(limit + 1);
    return { data: rows.slice(0, limit).map(toEvent), hasMore: rows.length > limit };
  }

  async checkpoints(tenantId: string, jobId: string, page: Page = {}): Promise<PageOf<FineTuningCheckpoint>> {
    await this.row(tenantId, jobId);
    const limit = pageSize(page);
    const rows = await this.db.select().from(fineTuneCheckpoints).where(eq(fineTuneCheckpoints.jobId, jobId)).orderBy(desc(fineTuneCheckpoints.step), desc(fineTuneCheckpoints.id));
    const start = page.after === undefined ? 0 : rows.findIndex((r) => r.id === page.after) + 1;
    if (start === 0 && page.after !== undefined) throw badCursor(page.after);
    const rest = rows.slice(start);
    return { data: rest.slice(0, limit).map(toCheckpoint), hasMore: rest.length > limit };
  }

  async metrics(tenantId: string, jobId: string): Promise<FineTuningMetrics> {
    await this.row(tenantId, jobId);
    const rows = await this.db
      .select({ data: fineTuneEvents.data })
      .from(fineTuneEvents)
      .where(and(eq(fineTuneEvents.jobId, jobId), eq(fineTuneEvents.type, "metrics")))
      .orderBy(asc(fineTuneEvents.id));
    return metricsSeries(rows.map((r) => r.data ?? null));
  }

  /**
   * The base model, or an adapter to continue (`BASE:ADAPTER` or `ADAPTER`: a name, `name@version` or an
   * id the tenant may use, as chat reads `model`), stored pinned as `BASE:<adapter id>` so that the job
   * continues exactly the version it was submitted for. Continuing takes the adapter's r, alpha and
   * targets; a job asking for others is refused.
   */
  private async checkModel(request: FineTuningJobRequest): Promise<{ model: string; hyperparameters: FineTuningHyperparameters }> {
    const { model } = request;
    const hyperparameters = request.hyperparameters ?? {};
    const base = await this.options.baseModel();
    if (model === base) return { model, hyperparameters };
    const adapter = await this.continued(model, request.tenantId, base);
    if (adapter.baseModel !== base) {
      throw new PlaneError("invalid_request", `Adapter '${adapter.name}@${adapter.version}' was trained on '${adapter.baseModel}'; this node trains '${base}'.`, { code: "model_not_available", param: "model" });
    }
    if (hyperparameters.adapterType === "prompt_tuning") {
      const what = adapter.kind === "prompt_tuning" ? "a prompt-tuning adapter is not supported yet" : `the LoRA adapter '${adapter.name}@${adapter.version}' cannot be continued as a prompt-tuning adapter`;
      throw new PlaneError("invalid_request", `A prompt-tuning job trains from the base model '${base}': continuing ${what}.`, { code: "adapter_type_conflict", param: "model" });
    }
    const spec = { rank: adapter.rank, alpha: adapter.alpha, targets: adapter.targetModules as LoraTarget[] };
    continuedHyperparameters({ ...hyperparameters, targetModules: hyperparameters.targetModules as LoraTarget[] | undefined }, spec);
    return { model: `${base}:${adapter.id}`, hyperparameters };
  }

  private async continued(model: string, tenantId: string, base: string): Promise<AdapterInfo> {
    const onBase = model.startsWith(`${base}:`);
    const resolved = this.options.adapters ? await this.options.adapters.resolve(model, tenantId).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e))) : undefined;
    if (resolved?.adapter) return resolved.adapter;
    if (onBase) throw modelNotFound(model);
    throw new PlaneError("invalid_request", `Model '${model}' cannot be fine-tuned here: this node trains its base model '${base}' (or continues one of your adapters, '${base}:NAME').`, { code: "model_not_available", param: "model" });
  }

  /** The tenant's own fine-tune file, of the kind the method trains on (a DPO job needs preference pairs): not_found (404) otherwise, naming the field. */
  private async checkFile(tenantId: string, fileId: string, param: string, method: "supervised" | "dpo"): Promise<void> {
    let purpose: string;
    try {
      purpose = (await this.options.files.get(tenantId, fileId)).purpose;
    } catch (e) {
      if (e instanceof PlaneError && e.kind === "not_found") throw new PlaneError("not_found", `No such file: '${fileId}' (${param}).`, { code: "file_not_found", param });
      throw e;
    }
    if (purpose !== "fine-tune") throw new PlaneError("invalid_request", `File '${fileId}' has purpose '${purpose}'; a ${param} must be uploaded with purpose 'fine-tune'.`, { code: "invalid_file_purpose", param });
    const preference = looksLikePreferenceData(new TextDecoder().decode(await this.options.files.content(tenantId, fileId)));
    if (preference !== (method === "dpo")) {
      const want = method === "dpo" ? "preference pairs ({\"input\", \"preferred_output\", \"non_preferred_output\"} per line)" : "chat examples ({\"messages\"} per line)";
      throw new PlaneError("invalid_request", `File '${fileId}' does not hold ${want}, which a '${method}' job trains on.`, { code: "invalid_file_format", param });
    }
  }

  private async row(tenantId: string, jobId: string): Promise<FineTuneJobRow> {
    const [row] = await this.db.select().from(fineTuneJobs).where(and(eq(fineTuneJobs.id, jobId), eq(fineTuneJobs.tenantId, tenantId))).limit(1);
    if (!row) throw notFound(jobId);
    return row;
  }

  private async cursor(tenantId: string, after: string): Promise<FineTuneJobRow> {
    try {
      return await this.row(tenantId, after);
    } catch {
      throw badCursor(after);
    }
  }
}

const isNotFound = (e: unknown) => e instanceof PlaneError && e.kind === "not_found";

const badCursor = (after: string) => new PlaneError("invalid_request", `Nothing '${after}' to list after.`, { code: "invalid_cursor", param: "after" });

const pageSize = (page: Page) => Math.max(1, Math.min(page.limit ?? DEFAULT_PAGE, MAX_PAGE));

/** Jobs listed after `cursor`, newest first (created_at, then id as a tie-break). */
function olderThan(cursor: FineTuneJobRow): SQL | undefined {
  return or(lt(fineTuneJobs.createdAt, cursor.createdAt), and(eq(fineTuneJobs.createdAt, cursor.createdAt), lt(fineTuneJobs.id, cursor.id)));
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! & 0x7fffffff;
}
