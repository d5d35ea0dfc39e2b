/**
 * The monitors' work, one step at a time, for a host's timer (Node: hosts/node/monitor-scheduler.ts;
 * Workers: a Cron Trigger's scheduled() would call `tick`):
 * - `tick()`: settles finished checks, then starts a check of every due monitor (a failed check, saying
 *   why, when its test set was deleted): an evaluation run of
 *   its test set through its arm (queued like any run, so the host's EvalWorker executes it, resumes it
 *   after a restart and shows it in /v1/evals/runs), and moves the monitor's schedule on by `every`
 *   from now (a host that was down runs one check, not the missed ones). A monitor whose previous check
 *   is still running is not started again.
 * - `settle()`: every running check whose run has finished: its metric means and alerts (checks.ts)
 *   are stored, the first succeeded check's run becomes the baseline unless one was pinned, gauges are
 *   set, and alerts are added to the run's events and sent to the webhook (signed, webhook.ts).
 * Steps never overlap (one queue), so a check is settled once; a check's status is stored last, after
 * its alerts and their webhook delivery (at least once: a receiver deduplicates by alert id). Web-standard APIs only.
 */
import type { EvalResult, EvalRun, Evals } from "../../ports/evals.ts";
import type { Monitor, MonitorAlert, MonitorCheck, Monitors } from "../../ports/monitors.ts";
import type { Tenants } from "../../ports/tenants.ts";
import { evaluateCheck } from "./checks.ts";
import type { MonitoringMetrics } from "./metrics.ts";
import { deliverWebhook, type WebhookFetch } from "./webhook.ts";

export const MONITOR_SEED = 20_240_601;

export interface MonitorServiceOptions {
  monitors: Monitors;
  evals: Evals;
  tenants: Pick<Tenants, "get">;
  metrics: MonitoringMetrics;
  /** Unix ms (tests move it instead of sleeping). */
  now: () => number;
  /** Recorded in each run's reproducibility block. */
  environment?: () => Promise<Record<string, unknown>>;
  /** Called after a check's run is queued (the host's EvalWorker looks for work at once). */
  onRunCreated?: () => void;
  fetch?: WebhookFetch;
  /** Waits before a webhook's second and third attempts (webhook.ts). */
  webhookRetryDelaysMs?: readonly number[];
  onError?: (err: unknown, monitorId: string) => void;
}

const FINISHED = new Set<EvalRun["status"]>(["succeeded", "failed", "cancelled"]);

export class MonitorService {
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: MonitorServiceOptions) {}

  tick(): Promise<void> {
    return this.serial(async () => {
      await this.settleAll();
      await this.startDue();
    });
  }

  settle(): Promise<void> {
    return this.serial(() => this.settleAll());
  }

  private serial(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => {});
    return next;
  }

  private async startDue(): Promise<void> {
    const { monitors, now } = this.options;
    const running = new Set((await monitors.runningChecks()).map((c) => c.monitorId));
    for (const monitor of await monitors.due(now())) {
      try {
        if (!running.has(monitor.id)) await this.start(monitor);
      } catch (err) {
        this.options.onError?.(err, monitor.id);
      } finally {
        await monitors.schedule(monitor.id, now(), now() + monitor.everyMs);
      }
    }
  }

  private async start(monitor: Monitor): Promise<void> {
    const { evals, monitors } = this.options;
    const dataset = await evals.getDataset(monitor.tenantId, monitor.datasetId);
    if (!dataset) {
      await monitors.addFailedCheck(monitor.id, `The monitor's test set ${monitor.datasetId} no longer exists.`);
      return;
    }
    const environment = { ...(await this.options.environment?.()), monitor: monitor.id, dataset: { id: dataset.id, name: dataset.name, items: dataset.items.length } };
    const spec = { datasetId: dataset.id, arms: [monitor.arm], thresholds: monitor.thresholds, seed: MONITOR_SEED, environment };
    const run = await evals.createRun(monitor.tenantId, spec, dataset.items.length);
    await evals.addEvent(run.id, "info", `Queued by monitor ${monitor.id}: ${dataset.items.length} items.`);
    await monitors.addCheck(monitor.id, run.id);
    this.options.onRunCreated?.();
  }

  private async settleAll(): Promise<void> {
    for (const check of await this.options.monitors.runningChecks()) {
      try {
        await this.settleOne(check);
      } catch (err) {
        this.options.onError?.(err, check.monitorId);
      }
    }
  }

  private async settleOne(check: MonitorCheck): Promise<void> {
    const { evals, monitors } = this.options;
    const monitor = await monitors.find(check.monitorId);
    if (!monitor) return;
    const run = check.runId ? await evals.getRun(monitor.tenantId, check.runId) : undefined;
    if (run && !FINISHED.has(run.status)) return;
    if (!run || run.status !== "succeeded") {
      const error = run ? `the run ${run.status}${run.error ? `: ${run.error}` : ""}` : "the run was deleted";
      return monitors.finishCheck(check.id, { status: "failed", metrics: {}, baseline: false, error });
    }
    const results = await evals.results(run.id);
    const baseline = monitor.baselineRunId ? await this.baselineResults(monitor) : undefined;
    const becomesBaseline = baseline === undefined;
    const outcome = evaluateCheck(monitor, results, baseline, run.spec.seed);
    if (becomesBaseline) await monitors.setBaseline(monitor.id, run.id, false);
    // Alerts and their delivery first, the check's status last: a check the API shows finished has all of
    // them, and one interrupted midway is settled again (alerts are unique per check; the webhook is at least once).
    const alerts: MonitorAlert[] = [];
    for (const alert of outcome.alerts) alerts.push(await monitors.addAlert({ ...alert, monitorId: monitor.id, checkId: check.id, adapter: outcome.adapter }));
    for (const alert of alerts) await evals.addEvent(run.id, "warn", `Monitor alert (${alert.kind}): ${alert.message}`);
    if (alerts.length > 0 && monitor.webhook) await this.notify(monitor, check, run.id, alerts);
    await monitors.finishCheck(check.id, { status: "succeeded", metrics: outcome.metrics, adapter: outcome.adapter, baseline: becomesBaseline });
    this.report(monitor, outcome.adapter ?? "", outcome.metrics, alerts);
  }

  /** The baseline run's results; undefined when that run is gone (this check then becomes the baseline). */
  private async baselineResults(monitor: Monitor): Promise<EvalResult[] | undefined> {
    const run = await this.options.evals.getRun(monitor.tenantId, monitor.baselineRunId!);
    return run ? this.options.evals.results(run.id) : undefined;
  }

  private report(monitor: Monitor, adapter: string, metrics: Record<string, number>, alerts: MonitorAlert[]): void {
    const labels = { tenant: monitor.tenantId, adapter, monitor: monitor.id };
    for (const [metric, value] of Object.entries(metrics)) this.options.metrics.monitorScore({ ...labels, metric }, value);
    this.options.metrics.monitorAlerting(labels, alerts.length > 0);
    for (const alert of alerts) this.options.metrics.monitorAlert({ ...labels, kind: alert.kind });
  }

  private async notify(monitor: Monitor, check: MonitorCheck, runId: string, alerts: MonitorAlert[]): Promise<void> {
    const secret = await this.options.monitors.webhookSecret(monitor.id);
    if (!secret) return;
    const payload = {
      type: "monitor.alert",
      created_at: Math.floor(this.options.now() / 1000),
      monitor: { id: monitor.id, dataset: monitor.datasetId, arm: monitor.arm },
      check: { id: check.id, run: runId },
      alerts: alerts.map(alertJson),
    };
    const delivery = await deliverWebhook(monitor.webhook!.url, secret, "monitor.alert", payload, { fetch: this.options.fetch, nowMs: this.options.now(), retryDelaysMs: this.options.webhookRetryDelaysMs });
    for (const alert of alerts) await this.options.monitors.setDelivery(alert.id, delivery);
  }
}

export function alertJson(a: MonitorAlert) {
  return {
    id: a.id,
    object: "eval.monitor.alert",
    monitor: a.monitorId,
    check: a.checkId,
    kind: a.kind,
    metric: a.metric,
    value: a.value,
    threshold: a.threshold ?? null,
    baseline: a.baseline ?? null,
    p: a.p ?? null,
    adapter: a.adapter ?? null,
    message: a.message,
    delivery: a.delivery ? { status: a.delivery.status, http_status: a.delivery.httpStatus ?? null, error: a.delivery.error ?? null, attempted_at: Math.floor(a.delivery.attemptedAt / 1000) } : null,
    created_at: Math.floor(a.createdAt / 1000),
  };
}
