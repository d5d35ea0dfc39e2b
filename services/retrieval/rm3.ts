/**
 * RM3 pseudo-relevance feedback for the keyword side (Lavrenko & Croft's relevance model, RM1,
 * interpolated with the query as in Anserini's RM3), off unless a search asks for it.
 *
 * Policy: a first BM25 pass gives the top `feedbackDocs` chunks; each is a bag of words (the query
 * parser's words, stop words and numbers dropped). RM1 weighs a word w by
 *   P(w|R) = sum over feedback chunks d of P(w|d) * P(d),  P(w|d) = tf(w,d) / |d|,  P(d) = score(d) / sum of scores
 * and keeps the `feedbackTerms` heaviest, renormalised. The expanded query gives each word
 *   weight(w) = originalWeight * 1/|q| [w in q] + (1 - originalWeight) * P(w|R).
 * FTS5's bm25() sums one term per phrase of the MATCH expression and takes no per-phrase weight, so a
 * word's weight becomes repetitions of its phrase: round(RESOLUTION * weight / max weight), at least
 * 1 (the heaviest word appears RESOLUTION times). The second pass ranks with that expression; stemming
 * (porter, in FTS5) applies to the expansion words as to the query's.
 */
import { keywordTerms, STOP_WORDS } from "./keyword-query.ts";

export interface Rm3Params {
  feedbackDocs: number;
  feedbackTerms: number;
  /** Share of the original query in the expanded one (0..1). */
  originalWeight: number;
}

/** Anserini's RM3 defaults (fbDocs 10, fbTerms 10, originalQueryWeight 0.5). */
export const DEFAULT_RM3: Rm3Params = { feedbackDocs: 10, feedbackTerms: 10, originalWeight: 0.5 };

/** Repetitions of the heaviest word in the weighted MATCH expression. */
export const RESOLUTION = 10;

/** The expanded query's word weights (summing to 1), heaviest first. */
export function rm3Weights(query: string, feedback: Array<{ text: string; score: number }>, params: Rm3Params = DEFAULT_RM3): Map<string, number> {
  const original = keywordTerms(query);
  const docs = feedback.slice(0, params.feedbackDocs).filter((d) => d.score > 0);
  const total = docs.reduce((s, d) => s + d.score, 0);
  const relevance = new Map<string, number>();
  for (const { text, score } of docs) {
    const words = feedbackWords(text);
    if (words.length === 0) continue;
    const tf = new Map<string, number>();
    for (const w of words) tf.set(w, (tf.get(w) ?? 0) + 1);
    for (const [w, n] of tf) relevance.set(w, (relevance.get(w) ?? 0) + (n / words.length) * (score / total));
  }
  const top = [...relevance].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, params.feedbackTerms);
  const mass = top.reduce((s, [, p]) => s + p, 0);
  const weights = new Map<string, number>();
  const add = (w: string, x: number) => weights.set(w, (weights.get(w) ?? 0) + x);
  const queryShare = mass > 0 ? params.originalWeight : 1;
  for (const w of original) add(w, queryShare / original.length);
  for (const [w, p] of top) add(w, ((1 - queryShare) * p) / mass);
  return new Map([...weights].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)));
}

/** The weighted words as an FTS5 MATCH expression: each quoted phrase repeated in proportion to its weight. */
export function weightedMatchExpression(weights: Map<string, number>): string {
  const max = Math.max(0, ...weights.values());
  if (max === 0) return "";
  const phrases: string[] = [];
  for (const [w, x] of weights) for (let i = 0; i < Math.max(1, Math.round((RESOLUTION * x) / max)); i++) phrases.push(`"${w}"`);
  return phrases.join(" OR ");
}

/** A feedback chunk's words as the query parser splits them, without stop words, numbers or one-letter words. */
function feedbackWords(text: string): string[] {
  return (text.normalize("NFKC").toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => w.length > 1 && w.length <= 64 && !STOP_WORDS.has(w) && !/^\p{N}+$/u.test(w));
}
