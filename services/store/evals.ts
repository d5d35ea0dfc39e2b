import { and, asc, desc, eq, gt, inArray, sql } from "drizzle-orm";
import type { EvalDataset, EvalEvent, EvalItem, EvalResult, EvalRun, EvalRunSpec, EvalRunStatus, Evals } from "../../ports/evals.ts";
import { newId } from "./ids.ts";
import { evalDatasets, evalEvents, evalResults, evalRuns, type EvalRunRow } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";

const FINISHED: ReadonlySet<EvalRunStatus> = new Set(["succeeded", "failed", "cancelled"]);

/**
 * The evaluations port on SQLite or D1. Datasets and runs are always filtered by tenant; results are
 * keyed by (run, item, arm) and inserted with ON CONFLICT DO NOTHING, and a run's `done` is recounted
 * from them, so recording the same result twice (a resumed runner) changes nothing.
 */
export class EvalStore implements Evals {
  constructor(private readonly db: StoreDb) {}

  async createDataset(tenantId: string, name: string, items: EvalItem[]): Promise<EvalDataset> {
    const [row] = await this.db.insert(evalDatasets).values({ id: newId("evalset"), tenantId, name, items, itemCount: items.length }).returning();
    return { id: row!.id, tenantId, name, items: row!.items, createdAt: row!.createdAt };
  }

  async listDatasets(tenantId: string): Promise<Omit<EvalDataset, "items">[]> {
    return this.db
      .select({ id: evalDatasets.id, tenantId: evalDatasets.tenantId, name: evalDatasets.name, createdAt: evalDatasets.createdAt })
      .from(evalDatasets)
      .where(eq(evalDatasets.tenantId, tenantId))
      .orderBy(desc(evalDatasets.createdAt), desc(evalDatasets.id));
  }

  async getDataset(tenantId: string, id: string): Promise<EvalDataset | undefined> {
    const [row] = await this.db.select().from(evalDatasets).where(and(eq(evalDatasets.tenantId, tenantId), eq(evalDatasets.id, id)));
    return row && { id: row.id, tenantId: row.tenantId, name: row.name, items: row.items, createdAt: row.createdAt };
  }

  async deleteDataset(tenantId: string, id: string): Promise<boolean> {
    const deleted = await this.db.delete(evalDatasets).where(and(eq(evalDatasets.tenantId, tenantId), eq(evalDatasets.id, id))).returning({ id: evalDatasets.id });
    return deleted.length > 0;
  }

  async createRun(tenantId: string, spec: EvalRunSpec, total: number): Promise<EvalRun> {
    const [row] = await this.db.insert(evalRuns).values({ id: newId("evalrun"), tenantId, spec, total }).returning();
    return runOf(row!);
  }

  async listRuns(tenantId: string): Promise<EvalRun[]> {
    const rows = await this.db.select().from(evalRuns).where(eq(evalRuns.tenantId, tenantId)).orderBy(desc(evalRuns.createdAt), desc(evalRuns.id));
    return rows.map(runOf);
  }

  async getRun(tenantId: string, id: string): Promise<EvalRun | undefined> {
    const [row] = await this.db.select().from(evalRuns).where(and(eq(evalRuns.tenantId, tenantId), eq(evalRuns.id, id)));
    return row && runOf(row);
  }

  async cancelRun(tenantId: string, id: string): Promise<EvalRun | undefined> {
    const run = await this.getRun(tenantId, id);
    if (!run || FINISHED.has(run.status)) return run;
    await this.setStatus(id, "cancelled");
    return this.getRun(tenantId, id);
  }

  async unfinishedRuns(): Promise<EvalRun[]> {
    const rows = await this.db.select().from(evalRuns).where(inArray(evalRuns.status, ["queued", "running"])).orderBy(asc(evalRuns.createdAt), asc(evalRuns.id));
    return rows.map(runOf);
  }

  async setStatus(runId: string, status: EvalRunStatus, error?: string): Promise<void> {
    const now = Date.now();
    const times = status === "running" ? { startedAt: sql`coalesce(${evalRuns.startedAt}, ${now})` } : FINISHED.has(status) ? { finishedAt: now } : {};
    // A finished run stays finished: a cancel that lands while the last item is recorded wins.
    await this.db
      .update(evalRuns)
      .set({ status, error: error ?? null, ...times })
      .where(and(eq(evalRuns.id, runId), inArray(evalRuns.status, ["queued", "running"])));
  }

  async recordResult(runId: string, result: EvalResult): Promise<void> {
    await this.db.insert(evalResults).values({ runId, item: result.item, arm: result.arm, result }).onConflictDoNothing();
    const counted = sql`(select count(*) from ${evalResults} where ${evalResults.runId} = ${runId})`;
    await this.db.update(evalRuns).set({ done: counted }).where(eq(evalRuns.id, runId));
  }

  async results(runId: string): Promise<EvalResult[]> {
    const rows = await this.db.select({ result: evalResults.result }).from(evalResults).where(eq(evalResults.runId, runId)).orderBy(asc(evalResults.item), asc(evalResults.arm));
    return rows.map((r) => r.result);
  }

  async addEvent(runId: string, level: EvalEvent["level"], message: string): Promise<void> {
    await this.db.insert(evalEvents).values({ runId, level, message });
  }

  async events(runId: string, after = 0): Promise<EvalEvent[]> {
    const rows = await this.db.select().from(evalEvents).where(and(eq(evalEvents.runId, runId), gt(evalEvents.id, after))).orderBy(asc(evalEvents.id));
    return rows.map((r) => ({ id: r.id, createdAt: r.createdAt, level: r.level, message: r.message }));
  }
}

function runOf(row: EvalRunRow): EvalRun {
  return {
    id: row.id,
    tenantId: row.tenantId,
    spec: row.spec,
    status: row.status,
    total: row.total,
    done: row.done,
    ...(row.error ? { error: row.error } : {}),
    createdAt: row.createdAt,
    ...(row.startedAt ? { startedAt: row.startedAt } : {}),
    ...(row.finishedAt ? { finishedAt: row.finishedAt } : {}),
  };
}
