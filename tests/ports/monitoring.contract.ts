/**
 * The Feedback and Monitors ports' contract (the stores behind production feedback, input drift and
 * eval monitors), run on SQLite (monitoring.test.ts) and on D1 inside workerd
 * (tests/hosts/workers/monitoring-d1.test.ts).
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { Feedback } from "../../ports/feedback.ts";
import type { Monitors } from "../../ports/monitors.ts";

export interface MonitoringFixture {
  feedback: Feedback;
  monitors: Monitors;
  /** Two existing tenants. */
  tenants: [string, string];
}

const DAY = 86_400_000;
const T0 = 1_800_000_000_000 - (1_800_000_000_000 % DAY); // a day boundary

export function monitoringContract(name: string, open: () => Promise<MonitoringFixture>): void {
  describe(`Feedback and Monitors ports: ${name}`, () => {
    let fx: MonitoringFixture;
    let a: string;
    let b: string;
    beforeEach(async () => {
      fx = await open();
      [a, b] = fx.tenants;
    });

    const serve = (id: string, tenantId: string, strategy: string, adapter: string | undefined, at: number, prompt = `prompt ${id}`) =>
      fx.feedback.recordResponse({ id, tenantId, strategy, adapter, prompt, createdAt: at });

    it("rates a tenant's responses once each (a later rating replaces), never another tenant's", async () => {
      await serve(`${a}-1`, a, "adapter", "good@1", T0 + 1000);
      expect(await fx.feedback.rate(b, `${a}-1`, "up")).toBeUndefined();
      expect(await fx.feedback.rate(a, `${a}-nope`, "up")).toBeUndefined();
      expect(await fx.feedback.rate(a, `${a}-1`, "up", "great")).toMatchObject({ id: `${a}-1`, rating: "up", comment: "great", adapter: "good@1", strategy: "adapter" });
      const again = await fx.feedback.rate(a, `${a}-1`, "down");
      expect(again).toMatchObject({ rating: "down" });
      expect(again!.comment).toBeUndefined();
      expect(await fx.feedback.summary(a, { groupBy: [] })).toEqual([{ bucket: 0, up: 0, down: 1 }]);
      expect(await fx.feedback.summary(b, { groupBy: [] })).toEqual([]);
    });

    it("counts ratings per day bucket, adapter and strategy, by when the response was served", async () => {
      const rows: Array<[string, string, string | undefined, number, "up" | "down" | null]> = [
        ["r1", "adapter", "good@1", T0 + 10, "up"],
        ["r2", "adapter", "good@1", T0 + 20, "up"],
        ["r3", "adapter", "good@1", T0 + 30, "down"],
        ["r4", "prompt", undefined, T0 + 40, "down"],
        ["r5", "adapter", "good@1", T0 + DAY + 5, "down"],
        ["r6", "adapter", "good@1", T0 + DAY + 6, null], // served, not rated
      ];
      for (const [id, strategy, adapter, at, rating] of rows) {
        await serve(`${a}-${id}`, a, strategy, adapter, at);
        if (rating) await fx.feedback.rate(a, `${a}-${id}`, rating);
      }
      await serve(`${b}-x`, b, "adapter", "good@1", T0 + 10);
      await fx.feedback.rate(b, `${b}-x`, "up");

      expect(await fx.feedback.summary(a, { groupBy: ["adapter", "strategy"], bucketMs: DAY })).toEqual([
        { bucket: T0, adapter: "", strategy: "prompt", up: 0, down: 1 },
        { bucket: T0, adapter: "good@1", strategy: "adapter", up: 2, down: 1 },
        { bucket: T0 + DAY, adapter: "good@1", strategy: "adapter", up: 0, down: 1 },
      ]);
      expect(await fx.feedback.summary(a, { groupBy: ["strategy"] })).toEqual([
        { bucket: 0, strategy: "adapter", up: 2, down: 2 },
        { bucket: 0, strategy: "prompt", up: 0, down: 1 },
      ]);
      expect(await fx.feedback.summary(a, { groupBy: [], since: T0 + DAY })).toEqual([{ bucket: 0, up: 0, down: 1 }]);
    });

    it("gives the last prompts per adapter, newest first, and prunes old responses", async () => {
      for (let i = 0; i < 4; i++) await serve(`${a}-p${i}`, a, "adapter", "good@1", T0 + i, `prompt ${i}`);
      await serve(`${a}-q`, a, "prompt", undefined, T0 + 9, "no adapter");
      expect(await fx.feedback.recentPrompts(a, "good@1", 3)).toEqual(["prompt 3", "prompt 2", "prompt 1"]);
      expect(await fx.feedback.recentPrompts(a, null, 5)).toEqual(["no adapter"]);
      expect(await fx.feedback.recentPrompts(b, "good@1", 5)).toEqual([]);
      expect(await fx.feedback.prune(T0 + 2)).toBeGreaterThanOrEqual(2);
      expect(await fx.feedback.recentPrompts(a, "good@1", 5)).toEqual(["prompt 3", "prompt 2"]);
      expect(await fx.feedback.rate(a, `${a}-p0`, "up")).toBeUndefined(); // pruned: no longer ratable
    });

    it("keeps monitors per tenant, schedules them, and records checks and alerts in order", async () => {
      const arm = { strategy: "adapter" as const };
      const m = await fx.monitors.create(a, { datasetId: "evalset_x", arm, everyMs: 3_600_000, thresholds: { tokenF1: 0.5 }, metrics: ["rougeL"], webhook: { url: "https://hooks.example/x", secret: "whsec_0123456789abcdef" }, nextRunAt: T0 });
      expect(m).toMatchObject({ tenantId: a, datasetId: "evalset_x", arm, everyMs: 3_600_000, thresholds: { tokenF1: 0.5 }, metrics: ["rougeL"], baselinePinned: false, webhook: { url: "https://hooks.example/x" }, nextRunAt: T0 });
      expect(JSON.stringify(m)).not.toContain("whsec_");
      expect(await fx.monitors.webhookSecret(m.id)).toBe("whsec_0123456789abcdef");
      expect(await fx.monitors.get(b, m.id)).toBeUndefined();
      expect(await fx.monitors.delete(b, m.id)).toBe(false);
      expect((await fx.monitors.list(a)).map((x) => x.id)).toEqual([m.id]);
      expect((await fx.monitors.find(m.id))?.tenantId).toBe(a);

      expect((await fx.monitors.due(T0 - 1)).map((x) => x.id)).not.toContain(m.id);
      expect((await fx.monitors.due(T0)).map((x) => x.id)).toContain(m.id);
      await fx.monitors.schedule(m.id, T0, T0 + 3_600_000);
      expect((await fx.monitors.due(T0 + 1)).map((x) => x.id)).not.toContain(m.id);
      expect(await fx.monitors.get(a, m.id)).toMatchObject({ lastRunAt: T0, nextRunAt: T0 + 3_600_000 });

      const first = await fx.monitors.addCheck(m.id, "evalrun_1");
      const second = await fx.monitors.addCheck(m.id, "evalrun_2");
      expect((await fx.monitors.runningChecks()).filter((c) => c.monitorId === m.id).map((c) => c.id)).toEqual([first.id, second.id]);
      await fx.monitors.finishCheck(first.id, { status: "succeeded", metrics: { rougeL: 0.8 }, adapter: "good@1", baseline: true });
      await fx.monitors.finishCheck(first.id, { status: "failed", metrics: {}, baseline: false, error: "late" }); // finished stays finished
      await fx.monitors.setBaseline(m.id, "evalrun_1", false);
      const history = await fx.monitors.history(m.id);
      expect(history.map((c) => [c.runId, c.status])).toEqual([["evalrun_1", "succeeded"], ["evalrun_2", "running"]]);
      expect(history[0]).toMatchObject({ metrics: { rougeL: 0.8 }, adapter: "good@1", baseline: true });
      expect(await fx.monitors.get(a, m.id)).toMatchObject({ baselineRunId: "evalrun_1", baselinePinned: false });

      const unstarted = await fx.monitors.addFailedCheck(m.id, "The test set is gone.");
      expect(unstarted).toMatchObject({ monitorId: m.id, status: "failed", error: "The test set is gone." });
      expect(unstarted.runId).toBeUndefined();
      expect((await fx.monitors.runningChecks()).map((c) => c.id)).not.toContain(unstarted.id);
      expect((await fx.monitors.history(m.id)).at(-1)?.id).toBe(unstarted.id);
      const alert = await fx.monitors.addAlert({ monitorId: m.id, checkId: second.id, kind: "regression", metric: "rougeL", value: 0.2, baseline: 0.8, p: 0.004, adapter: "bad@1", message: "dropped" });
      const later = await fx.monitors.addAlert({ monitorId: m.id, checkId: second.id, kind: "threshold", metric: "tokenF1", value: 0.1, threshold: 0.5, message: "below" });
      const again = await fx.monitors.addAlert({ monitorId: m.id, checkId: second.id, kind: "regression", metric: "rougeL", value: 0.1, message: "settled twice" });
      expect(again).toMatchObject({ id: alert.id, value: 0.2, message: "dropped" }); // one per check, kind and metric
      await fx.monitors.setDelivery(alert.id, { status: "delivered", httpStatus: 204, attemptedAt: T0 });
      const alerts = await fx.monitors.alerts(m.id);
      expect(alerts.map((x) => x.id)).toEqual([later.id, alert.id]);
      expect(alerts[1]).toMatchObject({ kind: "regression", value: 0.2, baseline: 0.8, p: 0.004, adapter: "bad@1", delivery: { status: "delivered", httpStatus: 204, attemptedAt: T0 } });
      expect(alerts[0]!.delivery).toBeUndefined();

      expect(await fx.monitors.delete(a, m.id)).toBe(true);
      expect(await fx.monitors.history(m.id)).toEqual([]);
      expect(await fx.monitors.alerts(m.id)).toEqual([]);
    });
  });
}
