import { and, asc, desc, eq, lte, sql } from "drizzle-orm";
import type { AlertDelivery, Monitor, MonitorAlert, MonitorCheck, Monitors, NewAlert, NewMonitor } from "../../ports/monitors.ts";
import { newId } from "./ids.ts";
import { evalMonitorAlerts, evalMonitorChecks, evalMonitors, type EvalMonitorAlertRow, type EvalMonitorCheckRow, type EvalMonitorRow } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";

/**
 * The monitors port on SQLite or D1. Monitors are filtered by tenant; checks and alerts belong to a
 * monitor and go with it (ON DELETE CASCADE). The webhook secret is read only by `webhookSecret`.
 * An alert is unique per check, kind and metric: adding it again returns the stored one.
 */
export class MonitorStore implements Monitors {
  constructor(private readonly db: StoreDb) {}

  async create(tenantId: string, m: NewMonitor): Promise<Monitor> {
    const [row] = await this.db
      .insert(evalMonitors)
      .values({
        id: newId("evalmon"),
        tenantId,
        datasetId: m.datasetId,
        arm: m.arm,
        everyMs: m.everyMs,
        thresholds: m.thresholds,
        metrics: m.metrics,
        baselineRunId: m.baselineRunId ?? null,
        baselinePinned: m.baselineRunId !== undefined,
        webhookUrl: m.webhook?.url ?? null,
        webhookSecret: m.webhook?.secret ?? null,
        nextRunAt: m.nextRunAt,
      })
      .returning();
    return monitorOf(row!);
  }

  async list(tenantId: string): Promise<Monitor[]> {
    const rows = await this.db.select().from(evalMonitors).where(eq(evalMonitors.tenantId, tenantId)).orderBy(desc(evalMonitors.createdAt), desc(evalMonitors.id));
    return rows.map(monitorOf);
  }

  async get(tenantId: string, id: string): Promise<Monitor | undefined> {
    const [row] = await this.db.select().from(evalMonitors).where(and(eq(evalMonitors.tenantId, tenantId), eq(evalMonitors.id, id)));
    return row && monitorOf(row);
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const deleted = await this.db.delete(evalMonitors).where(and(eq(evalMonitors.tenantId, tenantId), eq(evalMonitors.id, id))).returning({ id: evalMonitors.id });
    return deleted.length > 0;
  }

  async webhookSecret(monitorId: string): Promise<string | undefined> {
    const [row] = await this.db.select({ secret: evalMonitors.webhookSecret }).from(evalMonitors).where(eq(evalMonitors.id, monitorId));
    return row?.secret ?? undefined;
  }

  async setBaseline(monitorId: string, runId: string, pinned: boolean): Promise<void> {
    await this.db.update(evalMonitors).set({ baselineRunId: runId, baselinePinned: pinned }).where(eq(evalMonitors.id, monitorId));
  }

  async find(id: string): Promise<Monitor | undefined> {
    const [row] = await this.db.select().from(evalMonitors).where(eq(evalMonitors.id, id));
    return row && monitorOf(row);
  }

  async due(now: number): Promise<Monitor[]> {
    const rows = await this.db.select().from(evalMonitors).where(lte(evalMonitors.nextRunAt, now)).orderBy(asc(evalMonitors.nextRunAt), asc(evalMonitors.id));
    return rows.map(monitorOf);
  }

  async schedule(monitorId: string, ranAt: number, nextRunAt: number): Promise<void> {
    await this.db.update(evalMonitors).set({ lastRunAt: ranAt, nextRunAt }).where(eq(evalMonitors.id, monitorId));
  }

  async addCheck(monitorId: string, runId: string): Promise<MonitorCheck> {
    const [row] = await this.db.insert(evalMonitorChecks).values({ id: newId("evalchk"), monitorId, runId }).returning();
    return checkOf(row!);
  }

  async addFailedCheck(monitorId: string, error: string): Promise<MonitorCheck> {
    const [row] = await this.db.insert(evalMonitorChecks).values({ id: newId("evalchk"), monitorId, runId: null, status: "failed", error, finishedAt: Date.now() }).returning();
    return checkOf(row!);
  }

  async runningChecks(): Promise<MonitorCheck[]> {
    const rows = await this.db.select().from(evalMonitorChecks).where(eq(evalMonitorChecks.status, "running")).orderBy(asc(evalMonitorChecks.createdAt), asc(sql`rowid`));
    return rows.map(checkOf);
  }

  async finishCheck(checkId: string, o: Pick<MonitorCheck, "status" | "metrics" | "adapter" | "baseline" | "error">): Promise<void> {
    await this.db
      .update(evalMonitorChecks)
      .set({ status: o.status, metrics: o.metrics, adapter: o.adapter ?? null, baseline: o.baseline, error: o.error ?? null, finishedAt: Date.now() })
      .where(and(eq(evalMonitorChecks.id, checkId), eq(evalMonitorChecks.status, "running")));
  }

  async history(monitorId: string): Promise<MonitorCheck[]> {
    const rows = await this.db.select().from(evalMonitorChecks).where(eq(evalMonitorChecks.monitorId, monitorId)).orderBy(asc(evalMonitorChecks.createdAt), asc(sql`rowid`));
    return rows.map(checkOf);
  }

  async addAlert(a: NewAlert): Promise<MonitorAlert> {
    const [row] = await this.db
      .insert(evalMonitorAlerts)
      .values({
        id: newId("evalalert"),
        monitorId: a.monitorId,
        checkId: a.checkId,
        kind: a.kind,
        metric: a.metric,
        value: a.value,
        threshold: a.threshold ?? null,
        baseline: a.baseline ?? null,
        p: a.p ?? null,
        adapter: a.adapter ?? null,
        message: a.message,
      })
      .onConflictDoNothing()
      .returning();
    if (row) return alertOf(row);
    const [existing] = await this.db
      .select()
      .from(evalMonitorAlerts)
      .where(and(eq(evalMonitorAlerts.checkId, a.checkId), eq(evalMonitorAlerts.kind, a.kind), eq(evalMonitorAlerts.metric, a.metric)));
    return alertOf(existing!);
  }

  async setDelivery(alertId: string, delivery: AlertDelivery): Promise<void> {
    await this.db.update(evalMonitorAlerts).set({ delivery }).where(eq(evalMonitorAlerts.id, alertId));
  }

  async alerts(monitorId: string): Promise<MonitorAlert[]> {
    const rows = await this.db.select().from(evalMonitorAlerts).where(eq(evalMonitorAlerts.monitorId, monitorId)).orderBy(desc(evalMonitorAlerts.createdAt), desc(sql`rowid`));
    return rows.map(alertOf);
  }
}

const opt = <K extends string, V>(key: K, value: V | null | undefined) => (value === null || value === undefined ? {} : ({ [key]: value } as { [P in K]: V }));

function monitorOf(row: EvalMonitorRow): Monitor {
  return {
    id: row.id,
    tenantId: row.tenantId,
    datasetId: row.datasetId,
    arm: row.arm,
    everyMs: row.everyMs,
    thresholds: row.thresholds,
    metrics: row.metrics,
    ...opt("baselineRunId", row.baselineRunId),
    baselinePinned: row.baselinePinned,
    ...(row.webhookUrl ? { webhook: { url: row.webhookUrl } } : {}),
    nextRunAt: row.nextRunAt,
    ...opt("lastRunAt", row.lastRunAt),
    createdAt: row.createdAt,
  };
}

function checkOf(row: EvalMonitorCheckRow): MonitorCheck {
  return {
    id: row.id,
    monitorId: row.monitorId,
    ...opt("runId", row.runId),
    status: row.status,
    ...opt("adapter", row.adapter),
    metrics: row.metrics,
    baseline: row.baseline,
    ...opt("error", row.error),
    createdAt: row.createdAt,
    ...opt("finishedAt", row.finishedAt),
  };
}

function alertOf(row: EvalMonitorAlertRow): MonitorAlert {
  return {
    id: row.id,
    monitorId: row.monitorId,
    checkId: row.checkId,
    kind: row.kind,
    metric: row.metric,
    value: row.value,
    ...opt("threshold", row.threshold),
    ...opt("baseline", row.baseline),
    ...opt("p", row.p),
    ...opt("adapter", row.adapter),
    message: row.message,
    ...opt("delivery", row.delivery),
    createdAt: row.createdAt,
  };
}
