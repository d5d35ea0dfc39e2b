import { Hono, type Context } from "hono";
import { z } from "zod";
import type { Evals } from "../../ports/evals.ts";
import type { Monitor, MonitorCheck, Monitors } from "../../ports/monitors.ts";
import type { ModelResolver } from "../chat/strategy.ts";
import { planRequest } from "../chat/strategy.ts";
import type { AppEnv } from "../env.ts";
import { badRequest, notFound } from "../errors.ts";
import { METRICS } from "../evals/report.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { alertJson } from "../monitoring/monitor-service.ts";
import { newWebhookSecret, SIGNATURE_HEADER } from "../monitoring/webhook.ts";
import { Arm } from "./evals.ts";

/**
 * Monitors, mounted at /v1/evals/monitors: a small test set re-run through one arm (default: the
 * `adapter` strategy, i.e. the tenant's deployed default adapter) every `every`, its metric means kept
 * as history and alerts raised on a threshold or a significant drop against the baseline (the first
 * check's run, or `baseline_run`). The webhook's secret is shown once, at creation. Another tenant's
 * monitor answers 404.
 */

export interface MonitorRouteDeps {
  monitors: Monitors;
  evals: Evals;
  resolveModel: ModelResolver;
  now: () => number;
  /** Called when a monitor is created (the host's scheduler looks at once). */
  onMonitorCreated?: () => void;
}

/** The largest test set a monitor re-runs: monitors are for small, frequent checks. */
export const MAX_MONITOR_ITEMS = 200;
const UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MIN_EVERY_MS = 60_000;
const MAX_EVERY_MS = 30 * 86_400_000;

const Every = z
  .string()
  .regex(/^\d{1,6}[smhd]$/, "a duration such as 30m, 1h or 1d")
  .transform((s) => Number(s.slice(0, -1)) * UNITS[s.at(-1) as keyof typeof UNITS])
  .refine((ms) => ms >= MIN_EVERY_MS && ms <= MAX_EVERY_MS, "between 1m and 30d");

export const MonitorRequest = z
  .object({
    dataset: z.string().min(1),
    arm: Arm.default({ strategy: "adapter" }),
    every: Every,
    thresholds: z.partialRecord(z.enum(METRICS), z.number().min(0).max(1)).default({}),
    metrics: z.array(z.enum(METRICS)).min(1).max(METRICS.length).default(["tokenF1", "rougeL"]),
    baseline_run: z.string().min(1).optional(),
    webhook: z.object({ url: z.url({ protocol: /^https?$/ }).max(2048), secret: z.string().min(16).max(256).optional() }).strict().optional(),
  })
  .strict();

const BaselineRequest = z.object({ run: z.string().min(1) }).strict();

const seconds = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));

export function monitorJson(m: Monitor) {
  return {
    id: m.id,
    object: "eval.monitor",
    dataset: m.datasetId,
    arm: m.arm,
    every_seconds: m.everyMs / 1000,
    thresholds: m.thresholds,
    metrics: m.metrics,
    baseline_run: m.baselineRunId ?? null,
    baseline_pinned: m.baselinePinned,
    webhook: m.webhook ? { url: m.webhook.url, signature_header: SIGNATURE_HEADER } : null,
    next_run_at: seconds(m.nextRunAt),
    last_run_at: seconds(m.lastRunAt),
    created_at: seconds(m.createdAt),
  };
}

export function checkJson(c: MonitorCheck) {
  return { id: c.id, object: "eval.monitor.check", run: c.runId ?? null, status: c.status, adapter: c.adapter ?? null, metrics: c.metrics, baseline: c.baseline, error: c.error ?? null, created_at: seconds(c.createdAt), finished_at: seconds(c.finishedAt) };
}

export function monitorRoutes(deps: MonitorRouteDeps): Hono<AppEnv> {
  const { monitors, evals } = deps;
  const app = new Hono<AppEnv>();
  const tags = ["evals"];
  const own = async (c: Context<AppEnv>) => {
    const id = c.req.param("id")!;
    const monitor = await monitors.get(c.get("tenant").id, id);
    if (!monitor) throw notFound(`No evaluation monitor with id '${id}'.`, "id");
    return monitor;
  };
  const succeededRun = async (tenantId: string, runId: string, datasetId: string, param: string) => {
    const run = await evals.getRun(tenantId, runId);
    if (!run) throw notFound(`No evaluation run with id '${runId}'.`, param);
    if (run.status !== "succeeded" || run.spec.datasetId !== datasetId) throw badRequest(`The baseline must be a succeeded run over the monitor's test set.`, param, "invalid_baseline");
    return run;
  };

  app.post("/", describe({ summary: "Create a monitor: re-run a small test set through one arm (default: the deployed adapter) every `every`, alerting on thresholds and significant drops against the baseline.", tags }), jsonBody(MonitorRequest), async (c) => {
    const body = c.req.valid("json");
    const tenant = c.get("tenant");
    const dataset = await evals.getDataset(tenant.id, body.dataset);
    if (!dataset) throw notFound(`No evaluation dataset with id '${body.dataset}'.`, "dataset");
    if (dataset.items.length > MAX_MONITOR_ITEMS) throw badRequest(`A monitor re-runs at most ${MAX_MONITOR_ITEMS} items; this test set has ${dataset.items.length}.`, "dataset", "dataset_too_large");
    await planRequest(deps.resolveModel, tenant, body.arm.adapter, body.arm.strategy); // 400 now rather than errored checks later
    if (body.baseline_run) await succeededRun(tenant.id, body.baseline_run, dataset.id, "baseline_run");
    const secret = body.webhook ? (body.webhook.secret ?? newWebhookSecret()) : undefined;
    const monitor = await monitors.create(tenant.id, {
      datasetId: dataset.id,
      arm: body.arm,
      everyMs: body.every,
      thresholds: body.thresholds as Record<string, number>,
      metrics: body.metrics,
      baselineRunId: body.baseline_run,
      webhook: body.webhook && secret ? { url: body.webhook.url, secret } : undefined,
      nextRunAt: deps.now(),
    });
    deps.onMonitorCreated?.();
    const json = monitorJson(monitor);
    return c.json({ ...json, webhook: json.webhook && { ...json.webhook, secret } }, 201);
  });

  app.get("/", describe({ summary: "The caller's monitors, newest first.", tags }), async (c) => c.json({ object: "list", data: (await monitors.list(c.get("tenant").id)).map(monitorJson) }));
  app.get("/:id", describe({ summary: "A monitor.", tags }), async (c) => c.json(monitorJson(await own(c))));

  app.delete("/:id", describe({ summary: "Delete a monitor with its history and alerts (its runs stay).", tags }), async (c) => {
    const monitor = await own(c);
    await monitors.delete(monitor.tenantId, monitor.id);
    return c.json({ id: monitor.id, object: "eval.monitor.deleted", deleted: true });
  });

  app.get("/:id/history", describe({ summary: "The monitor's checks, oldest first: each run's metric means, the adapter that answered, which one is the baseline.", tags }), async (c) => {
    const monitor = await own(c);
    return c.json({ object: "list", data: (await monitors.history(monitor.id)).map(checkJson) });
  });

  app.get("/:id/alerts", describe({ summary: "The monitor's alerts, newest first, with their webhook delivery.", tags }), async (c) => {
    const monitor = await own(c);
    return c.json({ object: "list", data: (await monitors.alerts(monitor.id)).map(alertJson) });
  });

  app.post("/:id/baseline", describe({ summary: "Pin the monitor's baseline to a succeeded run over its test set.", tags }), jsonBody(BaselineRequest), async (c) => {
    const monitor = await own(c);
    const run = await succeededRun(monitor.tenantId, c.req.valid("json").run, monitor.datasetId, "run");
    await monitors.setBaseline(monitor.id, run.id, true);
    return c.json(monitorJson((await monitors.get(monitor.tenantId, monitor.id))!));
  });

  return app;
}
