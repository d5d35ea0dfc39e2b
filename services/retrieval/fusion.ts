/**
 * Fusion of ranked lists (one per retriever) into one ranking.
 *
 * - `rrf`: weighted reciprocal-rank fusion, sum of w / (60 + rank) over the lists a label is in.
 *   Scores are ignored, so a weak list pulls a strong one down as much as it is weighted.
 * - `weighted`: each list's scores are min-max normalised over that list ((s - min) / (max - min),
 *   1 when all are equal), then summed with the list's weight; a label missing from a list gets 0
 *   from it (as the list's worst candidate would). Scores of different kinds (cosine, BM25) become
 *   comparable, and how far apart candidates are still counts, which rank fusion throws away.
 *
 * Invariants: every label of every input appears once in the output; ties sort by label (stable,
 * deterministic); a label found by one list only is ranked by that list's contribution alone.
 */
import type { FusionMethod } from "../../ports/knowledge.ts";

export interface Scored {
  label: number;
  score: number;
}

export const RRF_K = 60;

/** Sum of weight / (RRF_K + rank) over the lists a label appears in (rank from 1). */
export function reciprocalRankFusion(lists: Scored[][], weights: number[] = lists.map(() => 1)): Scored[] {
  const scores = new Map<number, number>();
  lists.forEach((list, l) => list.forEach((hit, rank) => add(scores, hit.label, weights[l] / (RRF_K + rank + 1))));
  return sorted(scores);
}

/** Sum of weight × min-max normalised score over the lists a label appears in. */
export function weightedScoreFusion(lists: Scored[][], weights: number[] = lists.map(() => 1)): Scored[] {
  const scores = new Map<number, number>();
  lists.forEach((list, l) => {
    for (const [label, value] of minMax(list)) add(scores, label, weights[l] * value);
  });
  return sorted(scores);
}

export function fuse(method: FusionMethod, lists: Scored[][], weights: number[]): Scored[] {
  return method === "rrf" ? reciprocalRankFusion(lists, weights) : weightedScoreFusion(lists, weights);
}

/** Scores mapped onto [0, 1]: the list's best 1, its worst 0; all 1 when they are equal (or there is one). */
export function minMax(list: Scored[]): Map<number, number> {
  let min = Infinity;
  let max = -Infinity;
  for (const { score } of list) {
    min = Math.min(min, score);
    max = Math.max(max, score);
  }
  const span = max - min;
  return new Map(list.map(({ label, score }) => [label, span > 0 ? (score - min) / span : 1]));
}

function add(scores: Map<number, number>, label: number, value: number): void {
  scores.set(label, (scores.get(label) ?? 0) + value);
}

function sorted(scores: Map<number, number>): Scored[] {
  return [...scores].map(([label, score]) => ({ label, score })).sort((a, b) => b.score - a.score || a.label - b.label);
}
