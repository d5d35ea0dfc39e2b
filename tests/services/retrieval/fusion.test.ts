import { describe, expect, it } from "vitest";
import { minMax, reciprocalRankFusion, RRF_K, weightedScoreFusion, type Scored } from "../../../services/retrieval/fusion.ts";
import { limitPerDocument } from "../../../services/retrieval/per-document.ts";

const list = (...pairs: Array<[number, number]>): Scored[] => pairs.map(([label, score]) => ({ label, score }));
const labels = (hits: Scored[]) => hits.map((h) => h.label);

describe("min-max normalisation", () => {
  it("maps a list's best to 1 and its worst to 0, linearly", () => {
    expect([...minMax(list([1, 10], [2, 6], [3, 2]))]).toEqual([[1, 1], [2, 0.5], [3, 0]]);
  });

  it("gives 1 to every member of a list whose scores are all equal (or of one member)", () => {
    expect([...minMax(list([1, 0.3], [2, 0.3]))]).toEqual([[1, 1], [2, 1]]);
    expect([...minMax(list([7, -4]))]).toEqual([[7, 1]]);
  });

  it("is independent of the scale and sign of the scores", () => {
    const a = minMax(list([1, 0.9], [2, 0.5], [3, 0.1]));
    const b = minMax(list([1, -1], [2, -5], [3, -9]));
    expect([...a.values()].map((v) => v.toFixed(9))).toEqual([...b.values()].map((v) => v.toFixed(9)));
  });
});

describe("weighted score fusion", () => {
  const dense = list([1, 0.9], [2, 0.8], [3, 0.1]);
  const bm25 = list([3, 30], [2, 20], [4, 10]);

  it("sums weight × normalised score; a label missing from a list gets 0 from it", () => {
    const fused = weightedScoreFusion([dense, bm25], [0.5, 0.5]);
    const byLabel = new Map(fused.map((h) => [h.label, h.score]));
    expect(byLabel.get(1)).toBeCloseTo(0.5 * 1);
    expect(byLabel.get(2)).toBeCloseTo(0.5 * (0.7 / 0.8) + 0.5 * 0.5);
    expect(byLabel.get(3)).toBeCloseTo(0.5 * 0 + 0.5 * 1);
    expect(byLabel.get(4)).toBeCloseTo(0);
    expect(labels(fused)[0]).toBe(2);
  });

  it("follows the weights: all weight on one list reproduces its order", () => {
    expect(labels(weightedScoreFusion([dense, bm25], [0, 1])).slice(0, 2)).toEqual([3, 2]);
    expect(labels(weightedScoreFusion([dense, bm25], [1, 0])).slice(0, 3)).toEqual([1, 2, 3]);
  });

  it("ranks a hit found by one side only by that side, above weak two-sided hits", () => {
    const fused = weightedScoreFusion([list([9, 0.95], [5, 0.2], [6, 0.1]), list([5, 2], [6, 1.9], [7, 0.1])], [0.6, 0.4]);
    expect(labels(fused)[0]).toBe(9);
  });

  it("breaks ties by label, deterministically", () => {
    const fused = weightedScoreFusion([list([8, 1], [3, 0]), list([3, 1], [8, 0])], [1, 1]);
    expect(fused).toEqual([{ label: 3, score: 1 }, { label: 8, score: 1 }]);
  });

  it("keeps every label once, and handles empty lists", () => {
    expect(labels(weightedScoreFusion([dense, bm25], [1, 1])).sort()).toEqual([1, 2, 3, 4]);
    expect(labels(weightedScoreFusion([[], bm25], [1, 1]))).toEqual([3, 2, 4]);
    expect(weightedScoreFusion([[], []], [1, 1])).toEqual([]);
  });
});

describe("reciprocal-rank fusion", () => {
  it("sums weight / (60 + rank) and ignores the scores", () => {
    const fused = reciprocalRankFusion([list([1, 100], [2, 99]), list([2, 0.001], [3, 0])], [1, 2]);
    const byLabel = new Map(fused.map((h) => [h.label, h.score]));
    expect(byLabel.get(1)).toBeCloseTo(1 / (RRF_K + 1));
    expect(byLabel.get(2)).toBeCloseTo(1 / (RRF_K + 2) + 2 / (RRF_K + 1));
    expect(byLabel.get(3)).toBeCloseTo(2 / (RRF_K + 2));
    expect(labels(fused)).toEqual([2, 3, 1]);
  });

  it("breaks ties by label and counts one-sided hits", () => {
    expect(labels(reciprocalRankFusion([list([5, 1]), list([4, 1])]))).toEqual([4, 5]);
  });
});

describe("chunks per document", () => {
  const ranked = list([1, 9], [2, 8], [3, 7], [4, 6], [5, 5]);
  const docs = new Map([[1, "a"], [2, "a"], [3, "a"], [4, "b"], [5, "c"]]);

  it("group by document: each document once, at its best chunk, possibly fewer than k", () => {
    expect(labels(limitPerDocument(ranked, docs, 5, { max: 1, refill: false }))).toEqual([1, 4, 5]);
    expect(labels(limitPerDocument(ranked, docs, 2, { max: 1, refill: false }))).toEqual([1, 4]);
  });

  it("a cap gives others' chunks room, then refills in rank order when there are too few", () => {
    expect(labels(limitPerDocument(ranked, docs, 3, { max: 2, refill: true }))).toEqual([1, 2, 4]);
    expect(labels(limitPerDocument(ranked, docs, 5, { max: 1, refill: true }))).toEqual([1, 2, 3, 4, 5]);
    expect(labels(limitPerDocument(ranked, docs, 4, { max: 1, refill: true }))).toEqual([1, 2, 4, 5]);
  });

  it("drops chunks whose document is unknown (another tenant's, or deleted)", () => {
    expect(labels(limitPerDocument(list([9, 1], [1, 0.5]), docs, 2, { max: 1, refill: true }))).toEqual([1]);
  });
});
