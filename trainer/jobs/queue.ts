/**
 * The job queue as a trainer process sees it: claim one job, heartbeat it, record progress, finish it.
 * Every write is one statement, so it is atomic across processes sharing the SQLite file (WAL; writes
 * serialize) and on D1.
 *
 * Leases: a claim is a single UPDATE ... WHERE id = (oldest claimable) AND still claimable ...
 * RETURNING, so two workers never both get a job: the loser's UPDATE matches no row and it tries the
 * next. Claimable means queued, or running with an expired lease (its trainer died): such a job
 * continues from its last state checkpoint if it has one, else from scratch (trainer/jobs/runner.ts;
 * its earlier events stay; `attempts` counts the claims). Heartbeats, progress
 * and the finish only touch a job while this worker still owns the lease: a worker that lost it
 * (stalled past the expiry, and another claimed the job) learns so from `heartbeat` ("lost") and
 * stops without writing a result. A lease lost between publishing the adapter and `finish` leaves
 * that adapter version published but unrecorded; the next attempt records it when it trains the same
 * bytes (trainer/jobs/runner.ts `unrecordedVersion`), else publishes another version.
 */
import { and, asc, desc, eq, inArray, lt, or, sql } from "drizzle-orm";
import type { FineTuningError, FineTuningResult, PreferenceResult } from "../../ports/trainer.ts";
import { fineTuneCheckpoints, fineTuneJobs, type FineTuneJobRow } from "../../services/store/schema.ts";
import { newId } from "../../services/store/ids.ts";
import type { StoreDb } from "../../services/store/store-db.ts";
import { describePreferenceResult } from "../dpo/report-scores.ts";
import { describeResult } from "../report-scores.ts";
import { appendEvent, type NewEvent } from "./events.ts";

export interface JobQueueOptions {
  db: StoreDb;
  /** Who claims (unique per worker: host, pid, random). */
  owner: string;
  /** How long a claim or heartbeat holds the job. */
  leaseMs: number;
  now?: () => number;
}

export type Heartbeat = "ok" | "cancel" | "lost";

export type Outcome =
  | { status: "succeeded"; fineTunedModel: string; adapterId: string; trainedTokens: number; result?: FineTuningResult | PreferenceResult }
  | { status: "failed"; error: FineTuningError; trainedTokens?: number }
  | { status: "cancelled"; trainedTokens?: number };

export class JobQueue {
  readonly owner: string;
  private readonly db: StoreDb;
  private readonly now: () => number;

  constructor(private readonly options: JobQueueOptions) {
    this.db = options.db;
    this.owner = options.owner;
    this.now = options.now ?? Date.now;
  }

  /** Claims the oldest claimable job for this worker, or undefined when there is none. */
  async claim(): Promise<FineTuneJobRow | undefined> {
    const now = this.now();
    await this.cancelAbandoned(now);
    const claimable = and(eq(fineTuneJobs.cancelRequested, false), or(eq(fineTuneJobs.status, "queued"), and(eq(fineTuneJobs.status, "running"), lt(fineTuneJobs.leaseExpiresAt, now))));
    const oldest = this.db.select({ id: fineTuneJobs.id }).from(fineTuneJobs).where(claimable).orderBy(asc(fineTuneJobs.createdAt), asc(fineTuneJobs.id)).limit(1);
    const [row] = await this.db
      .update(fineTuneJobs)
      .set({ status: "running", leaseOwner: this.owner, leaseExpiresAt: now + this.options.leaseMs, attempts: sql`${fineTuneJobs.attempts} + 1`, trainedTokens: null, estimatedFinish: null })
      .where(and(inArray(fineTuneJobs.id, oldest), claimable))
      .returning();
    if (!row) return undefined;
    const restart = row.attempts > 1 ? ` (attempt ${row.attempts}: the previous trainer stopped heartbeating)` : "";
    await appendEvent(this.db, row.id, { message: `Fine-tuning job started${restart}` }, now);
    return row;
  }

  /** Extends the lease; says whether a cancel was asked, or the lease was lost to another worker. */
  async heartbeat(jobId: string): Promise<Heartbeat> {
    const now = this.now();
    const [row] = await this.db
      .update(fineTuneJobs)
      .set({ leaseExpiresAt: now + this.options.leaseMs })
      .where(this.owned(jobId))
      .returning({ cancel: fineTuneJobs.cancelRequested });
    if (!row) return "lost";
    return row.cancel ? "cancel" : "ok";
  }

  /** An event, while this worker owns the job (else dropped). */
  async event(jobId: string, event: NewEvent): Promise<void> {
    if ((await this.db.select({ id: fineTuneJobs.id }).from(fineTuneJobs).where(this.owned(jobId))).length === 0) return;
    await appendEvent(this.db, jobId, event, this.now());
  }

  async progress(jobId: string, estimatedFinish: number): Promise<void> {
    await this.db.update(fineTuneJobs).set({ estimatedFinish }).where(this.owned(jobId));
  }

  async checkpoint(jobId: string, step: number, fineTunedModel: string, metrics: Record<string, number>): Promise<void> {
    await this.db.insert(fineTuneCheckpoints).values({ id: newId("ftckpt", 24), jobId, step, fineTunedModel, metrics, createdAt: this.now() });
  }

  /** The job's checkpoint rows (every attempt's), highest step first. */
  async checkpoints(jobId: string): Promise<{ step: number; fineTunedModel: string }[]> {
    return this.db
      .select({ step: fineTuneCheckpoints.step, fineTunedModel: fineTuneCheckpoints.fineTunedModel })
      .from(fineTuneCheckpoints)
      .where(eq(fineTuneCheckpoints.jobId, jobId))
      .orderBy(desc(fineTuneCheckpoints.step), desc(fineTuneCheckpoints.createdAt));
  }

  /** Deletes the job's checkpoint rows served by `fineTunedModel` (pruned epoch checkpoints). */
  async deleteCheckpoint(jobId: string, fineTunedModel: string): Promise<void> {
    await this.db.delete(fineTuneCheckpoints).where(and(eq(fineTuneCheckpoints.jobId, jobId), eq(fineTuneCheckpoints.fineTunedModel, fineTunedModel)));
  }

  /** Those of `jobIds` that are finished or gone (their state checkpoints can go). */
  async finishedAmong(jobIds: readonly string[]): Promise<string[]> {
    if (jobIds.length === 0) return [];
    const live = await this.db
      .select({ id: fineTuneJobs.id })
      .from(fineTuneJobs)
      .where(and(inArray(fineTuneJobs.id, [...jobIds]), inArray(fineTuneJobs.status, ["queued", "running"])));
    const alive = new Set(live.map((r) => r.id));
    return jobIds.filter((id) => !alive.has(id));
  }

  /** Records the outcome and releases the lease; false when this worker no longer owned the job. */
  async finish(jobId: string, outcome: Outcome): Promise<boolean> {
    const now = this.now();
    const result =
      outcome.status === "succeeded"
        ? { fineTunedModel: outcome.fineTunedModel, resultAdapterId: outcome.adapterId, trainedTokens: outcome.trainedTokens, error: null, result: outcome.result ? { ...outcome.result } : null }
        : { error: outcome.status === "failed" ? outcome.error : null, trainedTokens: outcome.trainedTokens ?? null };
    const [row] = await this.db
      .update(fineTuneJobs)
      .set({ status: outcome.status, ...result, finishedAt: now, leaseOwner: null, leaseExpiresAt: null, estimatedFinish: null })
      .where(this.owned(jobId))
      .returning({ id: fineTuneJobs.id });
    if (!row) return false;
    // The result's summary comes just before the completion message, which stays the last event (as OpenAI's).
    if (outcome.status === "succeeded" && outcome.result) await appendEvent(this.db, jobId, { message: "method" in outcome.result ? describePreferenceResult(outcome.result) : describeResult(outcome.result) }, now);
    await appendEvent(this.db, jobId, finishEvent(outcome), now);
    return true;
  }

  /** Hands a job this worker owns back to the queue (a shutdown): queued again, or cancelled when a cancel was asked. */
  async release(jobId: string): Promise<void> {
    const now = this.now();
    const free = { leaseOwner: null, leaseExpiresAt: null, estimatedFinish: null };
    const [cancelled] = await this.db
      .update(fineTuneJobs)
      .set({ status: "cancelled", finishedAt: now, ...free })
      .where(and(this.owned(jobId), eq(fineTuneJobs.cancelRequested, true)))
      .returning({ id: fineTuneJobs.id });
    if (cancelled) return appendEvent(this.db, jobId, { message: "Fine-tuning job cancelled" }, now);
    const [queued] = await this.db.update(fineTuneJobs).set({ status: "queued", ...free }).where(this.owned(jobId)).returning({ id: fineTuneJobs.id });
    if (queued) await appendEvent(this.db, jobId, { message: "The trainer stopped; the job is queued again" }, now);
  }

  /** A running job asked to cancel whose trainer died: nobody will see the flag, so it is cancelled here. */
  private async cancelAbandoned(now: number): Promise<void> {
    const rows = await this.db
      .update(fineTuneJobs)
      .set({ status: "cancelled", finishedAt: now, leaseOwner: null, leaseExpiresAt: null })
      .where(and(eq(fineTuneJobs.status, "running"), eq(fineTuneJobs.cancelRequested, true), lt(fineTuneJobs.leaseExpiresAt, now)))
      .returning({ id: fineTuneJobs.id });
    for (const { id } of rows) await appendEvent(this.db, id, { message: "Fine-tuning job cancelled" }, now);
  }

  private owned(jobId: string) {
    return and(eq(fineTuneJobs.id, jobId), eq(fineTuneJobs.status, "running"), eq(fineTuneJobs.leaseOwner, this.owner));
  }
}

function finishEvent(outcome: Outcome): NewEvent {
  if (outcome.status === "succeeded") return { message: `The job has successfully completed: ${outcome.fineTunedModel}` };
  if (outcome.status === "cancelled") return { message: "Fine-tuning job cancelled" };
  return { level: "error", message: `The job failed: ${outcome.error.message}` };
}
