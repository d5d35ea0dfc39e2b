/**
 * The monitors port: a tenant's monitors (a test set re-run through one arm on a schedule), each
 * scheduled run's check (the evaluation run and the metric means it gave) and the alerts the checks
 * raised. A monitor's baseline is a run: its first check's, or one pinned by the user. The webhook
 * secret is stored to sign deliveries and is never listed back. A tenant sees only its own monitors.
 */
import type { EvalArm } from "./evals.ts";

export interface MonitorWebhook {
  url: string;
}

export interface Monitor {
  id: string;
  tenantId: string;
  datasetId: string;
  arm: EvalArm;
  everyMs: number;
  /** An alert when a check's mean of the metric falls below its threshold. */
  thresholds: Record<string, number>;
  /** Metrics watched for a significant drop against the baseline. */
  metrics: string[];
  baselineRunId?: string;
  /** Whether the baseline was pinned by the user (else it is the first check's run). */
  baselinePinned: boolean;
  webhook?: MonitorWebhook;
  nextRunAt: number;
  lastRunAt?: number;
  createdAt: number;
}

export interface NewMonitor {
  datasetId: string;
  arm: EvalArm;
  everyMs: number;
  thresholds: Record<string, number>;
  metrics: string[];
  baselineRunId?: string;
  webhook?: MonitorWebhook & { secret: string };
  nextRunAt: number;
}

export type CheckStatus = "running" | "succeeded" | "failed";

export interface MonitorCheck {
  id: string;
  monitorId: string;
  /** Absent when the check could not start (then it is failed, with its error). */
  runId?: string;
  status: CheckStatus;
  /** The adapter that answered (`name@version`), from the run's results. */
  adapter?: string;
  /** Mean of each metric over the items answered. */
  metrics: Record<string, number>;
  /** Whether this check's run became the monitor's baseline. */
  baseline: boolean;
  error?: string;
  createdAt: number;
  finishedAt?: number;
}

export interface AlertDelivery {
  status: "delivered" | "failed";
  /** The HTTP status the receiver answered. */
  httpStatus?: number;
  error?: string;
  attemptedAt: number;
}

export interface MonitorAlert {
  id: string;
  monitorId: string;
  checkId: string;
  /** threshold: the mean fell below the monitor's threshold; regression: a significant drop against the baseline. */
  kind: "threshold" | "regression";
  metric: string;
  value: number;
  threshold?: number;
  baseline?: number;
  /** The paired test's p-value (regression). */
  p?: number;
  adapter?: string;
  message: string;
  delivery?: AlertDelivery;
  createdAt: number;
}

export type NewAlert = Omit<MonitorAlert, "id" | "createdAt" | "delivery">;

export interface Monitors {
  create(tenantId: string, monitor: NewMonitor): Promise<Monitor>;
  list(tenantId: string): Promise<Monitor[]>;
  get(tenantId: string, id: string): Promise<Monitor | undefined>;
  delete(tenantId: string, id: string): Promise<boolean>;
  /** The webhook's signing secret (the scheduler's, never the API's). */
  webhookSecret(monitorId: string): Promise<string | undefined>;
  setBaseline(monitorId: string, runId: string, pinned: boolean): Promise<void>;

  /** A monitor by id, whoever's it is (the scheduler's lookup). */
  find(id: string): Promise<Monitor | undefined>;
  /** Every tenant's monitors whose next run is at or before `now`. */
  due(now: number): Promise<Monitor[]>;
  /** Moves the monitor's schedule on: its last run `ranAt`, its next `nextRunAt`. */
  schedule(monitorId: string, ranAt: number, nextRunAt: number): Promise<void>;

  addCheck(monitorId: string, runId: string): Promise<MonitorCheck>;
  /** Records a check that could not start, as failed with `error`. */
  addFailedCheck(monitorId: string, error: string): Promise<MonitorCheck>;
  /** Every tenant's checks still running, oldest first. */
  runningChecks(): Promise<MonitorCheck[]>;
  finishCheck(checkId: string, outcome: Pick<MonitorCheck, "status" | "metrics" | "adapter" | "baseline" | "error">): Promise<void>;
  /** The monitor's checks, oldest first. */
  history(monitorId: string): Promise<MonitorCheck[]>;

  /** Stores an alert; one of the same check, kind and metric already stored is returned instead. */
  addAlert(alert: NewAlert): Promise<MonitorAlert>;
  setDelivery(alertId: string, delivery: AlertDelivery): Promise<void>;
  /** The monitor's alerts, newest first. */
  alerts(monitorId: string): Promise<MonitorAlert[]>;
}
