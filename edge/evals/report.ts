/**
 * An evaluation run's report, built from its stored per-item results (nothing else): per arm the mean
 * of every metric with a 95% percentile-bootstrap interval over items, the pass / fail / errored counts
 * against the run's thresholds, latency and token percentiles; between every pair of arms and every
 * metric the paired difference (over the items both arms answered) with its bootstrap interval and
 * the paired sign-flip test (statistics.ts). A comparison is significant when p < 0.05 and its
 * interval excludes 0; only then does it carry a sentence ("rag beats prompt on rougeL by 0.12 ± 0.04",
 * ± the interval's half-width). Every random draw is seeded from the run's seed.
 */
import type { EvalArm, EvalDataset, EvalResult, EvalRun } from "../../ports/evals.ts";
import { bootstrapMean, pairedTest, quantile, type Interval } from "./statistics.ts";

export const METRICS = ["rouge1", "rouge2", "rougeL", "bleu", "tokenF1", "exactMatch", "contextSupport", "recallAtK", "precisionAtK", "mrr"] as const;
export const ALPHA = 0.05;
const RESAMPLES = 2000;
/** Sign-flip resamples of a comparison beyond 16 pairs: p to about ±0.003 at p = 0.05. */
const PERMUTATIONS = 5000;

export interface MetricSummary extends Interval {
  /** Items the arm has this score for. */
  n: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

export interface ArmReport {
  index: number;
  label: string;
  arm: EvalArm;
  /** The adapters (`name@version`) that answered for this arm. */
  adapters: string[];
  result_counts: { total: number; passed: number; failed: number; errored: number };
  /** The error codes of errored items, with how many. */
  errors: Record<string, number>;
  metrics: Record<string, MetricSummary>;
  latency_ms: { ttft: Percentiles; total: Percentiles };
  tokens: { prompt: Percentiles; completion: Percentiles };
}

export interface Comparison {
  a: string;
  b: string;
  metric: string;
  n: number;
  /** Mean of a − b, with its bootstrap interval. */
  difference: Interval;
  p: number;
  test: "paired sign-flip permutation (two-sided)";
  significant: boolean;
  /** Said only when significant. */
  sentence: string | null;
}

export interface ItemReport {
  index: number;
  line: number;
  messages: EvalDataset["items"][number]["messages"];
  reference: string;
  relevant_documents: string[] | null;
  /** One per arm, in arm order (null: not run yet). */
  results: (EvalResult & { passed: boolean | null })[] | null[];
}

export interface EvalReport {
  object: "eval.report";
  run: { id: string; status: EvalRun["status"]; total: number; done: number; created_at: number; finished_at: number | null };
  dataset: { id: string; name: string; items: number };
  reproducibility: Record<string, unknown>;
  arms: ArmReport[];
  comparisons: Comparison[];
  /** The significant comparisons' sentences. */
  findings: string[];
  items: ItemReport[];
}

export function armLabels(arms: readonly EvalArm[]): string[] {
  const base = arms.map((a) => (a.adapter ? `${a.strategy}:${a.adapter}` : a.strategy));
  return base.map((label, i) => (base.indexOf(label) === base.lastIndexOf(label) ? label : `${label}#${i + 1}`));
}

export function buildReport(run: EvalRun, dataset: EvalDataset, results: readonly EvalResult[]): EvalReport {
  const { arms, thresholds = {}, seed } = run.spec;
  const metrics = METRICS.filter((m) => !run.spec.metrics || run.spec.metrics.includes(m));
  const labels = armLabels(arms);
  const grid = arms.map(() => new Array<EvalResult | undefined>(dataset.items.length).fill(undefined));
  for (const r of results) if (grid[r.arm] && r.item < dataset.items.length) grid[r.arm]![r.item] = r;
  const passed = (r: EvalResult) => r.error === undefined && Object.entries(thresholds).every(([m, t]) => r.scores[m] === undefined || r.scores[m]! >= t);

  const armReports = arms.map((arm, a) => armReport(a, labels[a]!, arm, grid[a]!, metrics, passed, seed));
  const comparisons = compareArms(labels, grid, metrics, seed);
  return {
    object: "eval.report",
    run: { id: run.id, status: run.status, total: run.total, done: run.done, created_at: run.createdAt, finished_at: run.finishedAt ?? null },
    dataset: { id: dataset.id, name: dataset.name, items: dataset.items.length },
    reproducibility: {
      ...run.spec.environment,
      seed,
      bootstrap: { resamples: RESAMPLES, level: 1 - ALPHA, method: "percentile" },
      paired_test: { method: "sign-flip permutation, two-sided", exact_up_to_pairs: 16, resamples: PERMUTATIONS, alpha: ALPHA },
      arms: arms.map((arm, a) => ({ label: labels[a], ...arm, adapters: armReports[a]!.adapters })),
      metrics,
      thresholds,
    },
    arms: armReports,
    comparisons,
    findings: comparisons.flatMap((c) => (c.sentence ? [c.sentence] : [])),
    items: dataset.items.map((item, i) => ({
      index: i,
      line: item.line,
      messages: item.messages,
      reference: item.reference,
      relevant_documents: item.relevantDocuments ?? null,
      results: grid.map((g) => (g[i] ? { ...g[i]!, passed: g[i]!.error ? null : passed(g[i]!) } : null)) as ItemReport["results"],
    })),
  };
}

function armReport(index: number, label: string, arm: EvalArm, results: (EvalResult | undefined)[], metrics: readonly string[], passed: (r: EvalResult) => boolean, seed: number): ArmReport {
  const stored = results.filter((r): r is EvalResult => r !== undefined);
  const answered = stored.filter((r) => r.error === undefined);
  const errors: Record<string, number> = {};
  for (const r of stored) if (r.error) errors[r.error.code] = (errors[r.error.code] ?? 0) + 1;
  const summaries: Record<string, MetricSummary> = {};
  metrics.forEach((m, k) => {
    const values = answered.flatMap((r) => (r.scores[m] === undefined ? [] : [r.scores[m]!]));
    if (values.length > 0) summaries[m] = { ...bootstrapMean(values, { seed: mix(seed, index, k), resamples: RESAMPLES, level: 1 - ALPHA }), n: values.length };
  });
  const nPassed = answered.filter(passed).length;
  return {
    index,
    label,
    arm,
    adapters: [...new Set(answered.flatMap((r) => (r.adapter ? [r.adapter] : [])))],
    result_counts: { total: stored.length, passed: nPassed, failed: answered.length - nPassed, errored: stored.length - answered.length },
    errors,
    metrics: summaries,
    latency_ms: { ttft: percentiles(answered.map((r) => r.ttftMs)), total: percentiles(answered.map((r) => r.totalMs)) },
    tokens: { prompt: percentiles(answered.map((r) => r.promptTokens)), completion: percentiles(answered.map((r) => r.completionTokens)) },
  };
}

function compareArms(labels: string[], grid: (EvalResult | undefined)[][], metrics: readonly string[], seed: number): Comparison[] {
  const out: Comparison[] = [];
  for (let a = 0; a < labels.length; a++) {
    for (let b = a + 1; b < labels.length; b++) {
      metrics.forEach((m, k) => {
        const pairs = grid[a]!.flatMap((ra, i) => {
          const rb = grid[b]![i];
          const x = ra?.error ? undefined : ra?.scores[m];
          const y = rb?.error ? undefined : rb?.scores[m];
          return x === undefined || y === undefined ? [] : [[x, y] as const];
        });
        if (pairs.length < 2) return;
        const s = mix(seed, 1000 + a * 100 + b, k);
        const diffs = pairs.map(([x, y]) => x - y);
        const difference = bootstrapMean(diffs, { seed: s, resamples: RESAMPLES, level: 1 - ALPHA });
        const test = pairedTest(pairs.map((p) => p[0]), pairs.map((p) => p[1]), { seed: s, resamples: PERMUTATIONS });
        const significant = test.p < ALPHA && (difference.low > 0 || difference.high < 0);
        out.push({ a: labels[a]!, b: labels[b]!, metric: m, n: pairs.length, difference, p: test.p, test: "paired sign-flip permutation (two-sided)", significant, sentence: significant ? sentence(labels[a]!, labels[b]!, m, difference) : null });
      });
    }
  }
  return out;
}

function sentence(a: string, b: string, metric: string, d: Interval): string {
  const [winner, loser] = d.mean > 0 ? [a, b] : [b, a];
  return `${winner} beats ${loser} on ${metric} by ${Math.abs(d.mean).toFixed(2)} ± ${((d.high - d.low) / 2).toFixed(2)}`;
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: NaN, p90: NaN, p99: NaN, mean: NaN };
  return { p50: quantile(values, 0.5), p90: quantile(values, 0.9), p99: quantile(values, 0.99), mean: values.reduce((s, v) => s + v, 0) / values.length };
}

/** A distinct, deterministic seed per (arm or pair, metric). */
const mix = (seed: number, i: number, k: number) => (Math.imul(seed ^ 0x9e3779b9, 31) + i * 7919 + k * 104_729) >>> 0;
