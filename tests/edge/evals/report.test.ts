import { describe, expect, it } from "vitest";
import { buildReport } from "../../../edge/evals/report.ts";
import { retrievalScores } from "../../../edge/evals/retrieval-metrics.ts";
import type { EvalDataset, EvalResult, EvalRun } from "../../../ports/evals.ts";

const n = 12;
const dataset: EvalDataset = {
  id: "evalset_1",
  tenantId: "t",
  name: "constructed",
  createdAt: 0,
  items: Array.from({ length: n }, (_, i) => ({ line: i + 1, messages: [{ role: "user", content: `q${i}` }], reference: "r" })),
};
const run: EvalRun = {
  id: "evalrun_1",
  tenantId: "t",
  status: "succeeded",
  total: 3 * n,
  done: 3 * n,
  createdAt: 0,
  spec: { datasetId: dataset.id, arms: [{ strategy: "rag" }, { strategy: "adapter" }, { strategy: "prompt" }], seed: 5, thresholds: { rougeL: 0.5 }, environment: { model: "m" } },
};
const result = (item: number, arm: number, rougeL: number): EvalResult => ({ item, arm, answer: "a", promptTokens: 10 + item, completionTokens: 5, ttftMs: item, totalMs: 10 * item, sources: [], scores: { rougeL } });

describe("buildReport", () => {
  // adapter beats rag on every item by 0.1 to 0.2; prompt is rag plus noise of both signs.
  const results = dataset.items.flatMap((_, i) => [result(i, 0, 0.3 + 0.02 * i), result(i, 1, 0.45 + 0.02 * i + (i % 2) * 0.05), result(i, 2, 0.3 + 0.02 * i + (i % 2 ? 0.01 : -0.01))]);
  const report = buildReport(run, dataset, results);

  it("aggregates are the per-item scores' means and counts", () => {
    const [rag, adapter] = report.arms;
    expect(rag!.metrics.rougeL!.mean).toBeCloseTo(results.filter((r) => r.arm === 0).reduce((s, r) => s + r.scores.rougeL!, 0) / n, 12);
    expect(rag!.metrics.rougeL!.n).toBe(n);
    expect(rag!.result_counts).toEqual({ total: n, passed: results.filter((r) => r.arm === 0 && r.scores.rougeL! >= 0.5).length, failed: results.filter((r) => r.arm === 0 && r.scores.rougeL! < 0.5).length, errored: 0 });
    expect(adapter!.latency_ms.total.p50).toBeCloseTo(55, 12); // median of 0, 10, ..., 110
    expect(report.items[3]!.results[1]!.scores.rougeL).toBe(results[3 * 3 + 1]!.scores.rougeL);
  });

  it("says a sentence only for a significant paired difference", () => {
    const ragAdapter = report.comparisons.find((c) => c.a === "rag" && c.b === "adapter")!;
    expect(ragAdapter.significant).toBe(true);
    expect(ragAdapter.p).toBeCloseTo(2 / 4096, 12); // every one of 12 differences has the same sign: exact p = 2/2^12
    const half = (ragAdapter.difference.high - ragAdapter.difference.low) / 2;
    expect(ragAdapter.sentence).toBe(`adapter beats rag on rougeL by ${Math.abs(ragAdapter.difference.mean).toFixed(2)} ± ${half.toFixed(2)}`);
    const ragPrompt = report.comparisons.find((c) => c.a === "rag" && c.b === "prompt")!;
    expect(ragPrompt.significant).toBe(false);
    expect(ragPrompt.sentence).toBeNull();
    expect(report.findings).toContain(ragAdapter.sentence);
  });

  it("an errored item counts as errored and is left out of the means and the pairs", () => {
    const withError = results.map((r) => (r.arm === 1 && r.item === 0 ? { ...r, error: { code: "model_not_found", message: "x" }, scores: {} } : r));
    const rep = buildReport(run, dataset, withError);
    expect(rep.arms[1]!.result_counts.errored).toBe(1);
    expect(rep.arms[1]!.metrics.rougeL!.n).toBe(n - 1);
    expect(rep.comparisons.find((c) => c.b === "adapter")!.n).toBe(n - 1);
  });
});

describe("retrievalScores", () => {
  it("scores distinct documents in rank order against ids or titles", () => {
    const sources = [
      { documentId: "d1", title: "Cats" },
      { documentId: "d1", title: "Cats" },
      { documentId: "d2", title: "Dogs" },
      { documentId: "d3", title: "Boats" },
    ];
    expect(retrievalScores(sources, ["Dogs", "d9"])).toEqual({ recallAtK: 0.5, precisionAtK: 1 / 3, mrr: 0.5 });
    expect(retrievalScores(sources, ["d1", "Boats"])).toEqual({ recallAtK: 1, precisionAtK: 2 / 3, mrr: 1 });
    expect(retrievalScores([], ["d1"])).toEqual({ recallAtK: 0, precisionAtK: 0, mrr: 0 });
  });
});
