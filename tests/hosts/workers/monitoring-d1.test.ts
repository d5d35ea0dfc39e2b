/** The Feedback and Monitors ports' contract on D1 inside workerd: the same stores the Node host runs on better-sqlite3. */
import { createScheduledController, env } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import { describe, expect, it } from "vitest";
import worker, { type WorkerEnv } from "../../../hosts/workers/worker.ts";
import { RESPONSE_RETENTION_MS } from "../../../ports/feedback.ts";
import { FeedbackStore } from "../../../services/store/feedback.ts";
import { MonitorStore } from "../../../services/store/monitors.ts";
import * as schema from "../../../services/store/schema.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { monitoringContract } from "../../ports/monitoring.contract.ts";

const DB = (env as unknown as { DB: D1Database }).DB;

monitoringContract("D1", async () => {
  const db = drizzle(DB, { schema });
  const tenants = new TenantStore(db);
  const [a, b] = [await tenants.create("mon-a"), await tenants.create("mon-b")];
  return { feedback: new FeedbackStore(db), monitors: new MonitorStore(db), tenants: [a.id, b.id] };
});

describe("the worker's scheduled() (the Cron Trigger)", () => {
  it("prunes served responses past their retention and keeps the recent ones", async () => {
    const db = drizzle(DB, { schema });
    const tenant = await new TenantStore(db).create("cron-co");
    const feedback = new FeedbackStore(db);
    const now = Date.now();
    await feedback.recordResponse({ id: "chatcmpl-old", tenantId: tenant.id, strategy: "prompt", prompt: "old", createdAt: now - RESPONSE_RETENTION_MS - 60_000 });
    await feedback.recordResponse({ id: "chatcmpl-new", tenantId: tenant.id, strategy: "prompt", prompt: "new", createdAt: now - 60_000 });
    await worker.scheduled!(createScheduledController({ scheduledTime: now, cron: "17 * * * *" }), env as unknown as WorkerEnv);
    expect(await feedback.recentPrompts(tenant.id, null, 10)).toEqual(["new"]);
  });
});
