/**
 * What a monitor check says about a finished run, pure: each watched metric's mean over the test
 * set, and the alerts it raises.
 * - An errored item counts 0 on every metric: a monitor watches served quality, and an answer that
 *   failed (a deleted adapter, an overflowing prompt) is a bad answer.
 * - threshold: the mean is below the monitor's threshold for that metric.
 * - regression: against the baseline run, over the items both runs have, the mean paired difference
 *   (check − baseline) is negative, the paired sign-flip test gives p < ALPHA and the difference's
 *   95% bootstrap interval lies below 0 (edge/evals/statistics.ts, seeded by the run's seed).
 *   The check that sets the baseline raises no regression.
 */
import type { EvalResult } from "../../ports/evals.ts";
import type { Monitor, NewAlert } from "../../ports/monitors.ts";
import { ALPHA } from "../evals/report.ts";
import { bootstrapMean, mean, pairedTest } from "../evals/statistics.ts";

export type CheckAlert = Omit<NewAlert, "monitorId" | "checkId" | "adapter">;

export interface CheckOutcome {
  metrics: Record<string, number>;
  /** The adapter most results name (`name@version`). */
  adapter?: string;
  alerts: CheckAlert[];
}

const RESAMPLES = 2000;

export function watchedMetrics(monitor: Pick<Monitor, "metrics" | "thresholds">): string[] {
  return [...new Set([...monitor.metrics, ...Object.keys(monitor.thresholds)])];
}

/** Per item index, the metric's score (0 when errored or unscored). */
function scoresByItem(results: readonly EvalResult[], metric: string): Map<number, number> {
  return new Map(results.map((r) => [r.item, r.error ? 0 : (r.scores[metric] ?? 0)]));
}

export function evaluateCheck(monitor: Pick<Monitor, "metrics" | "thresholds">, results: readonly EvalResult[], baseline: readonly EvalResult[] | undefined, seed: number): CheckOutcome {
  const metrics: Record<string, number> = {};
  const alerts: CheckAlert[] = [];
  for (const metric of watchedMetrics(monitor)) {
    const current = scoresByItem(results, metric);
    const value = mean([...current.values()]);
    if (Number.isNaN(value)) continue;
    metrics[metric] = value;
    const threshold = monitor.thresholds[metric];
    if (threshold !== undefined && value < threshold) {
      alerts.push({ kind: "threshold", metric, value, threshold, message: `${metric} fell to ${value.toFixed(3)}, below the threshold ${threshold}.` });
    }
    if (baseline) {
      const regression = regressionOf(metric, current, scoresByItem(baseline, metric), seed);
      if (regression) alerts.push(regression);
    }
  }
  metrics.errorRate = results.length === 0 ? 0 : results.filter((r) => r.error).length / results.length;
  return { metrics, adapter: commonAdapter(results), alerts };
}

function regressionOf(metric: string, current: Map<number, number>, base: Map<number, number>, seed: number): CheckAlert | undefined {
  const items = [...current.keys()].filter((i) => base.has(i));
  if (items.length === 0) return undefined;
  const a = items.map((i) => current.get(i)!);
  const b = items.map((i) => base.get(i)!);
  const test = pairedTest(a, b, { seed, resamples: 5000 });
  const interval = bootstrapMean(a.map((x, i) => x - b[i]!), { seed, resamples: RESAMPLES });
  if (!(test.meanDifference < 0 && test.p < ALPHA && interval.high < 0)) return undefined;
  const baselineMean = mean(b);
  return {
    kind: "regression",
    metric,
    value: mean(a),
    baseline: baselineMean,
    p: test.p,
    message: `${metric} dropped from ${baselineMean.toFixed(3)} to ${mean(a).toFixed(3)} against the baseline (paired difference ${interval.mean.toFixed(3)}, 95% CI [${interval.low.toFixed(3)}, ${interval.high.toFixed(3)}], p = ${test.p.toPrecision(3)}, n = ${items.length}).`,
  };
}

function commonAdapter(results: readonly EvalResult[]): string | undefined {
  const counts = new Map<string, number>();
  for (const r of results) if (r.adapter) counts.set(r.adapter, (counts.get(r.adapter) ?? 0) + 1);
  return [...counts.entries()].sort((x, y) => y[1] - x[1])[0]?.[0];
}
