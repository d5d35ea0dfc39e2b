/**
 * Limits how many chunks of one document a ranking returns, so that one long document does not fill
 * the results (or a RAG prompt) when other documents are relevant too.
 *
 * Policy: walk the ranking best first and take a chunk while its document has fewer than `max`
 * taken; with `refill`, chunks passed over fill the remaining places in rank order (so a knowledge
 * base of one document still gives k chunks). Without it, the result holds at most `max` chunks per
 * document and may be shorter than k.
 */
import type { Scored } from "./fusion.ts";

export interface PerDocumentLimit {
  max: number;
  refill: boolean;
}

export function limitPerDocument(ranked: Scored[], documentOf: ReadonlyMap<number, string>, k: number, { max, refill }: PerDocumentLimit): Scored[] {
  const taken = new Map<string, number>();
  const out: Scored[] = [];
  const passed: Scored[] = [];
  for (const hit of ranked) {
    if (out.length === k) break;
    const doc = documentOf.get(hit.label);
    if (doc === undefined) continue;
    const n = taken.get(doc) ?? 0;
    if (n < max) {
      taken.set(doc, n + 1);
      out.push(hit);
    } else passed.push(hit);
  }
  if (!refill || out.length === k) return out;
  // Passed-over chunks go back in at their rank: merge the two lists, keeping the ranking's order.
  const rank = new Map(ranked.map((h, i) => [h.label, i]));
  return [...out, ...passed.slice(0, k - out.length)].sort((a, b) => rank.get(a.label)! - rank.get(b.label)!);
}
