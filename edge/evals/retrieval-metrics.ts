/**
 * Retrieval scores of one item's sources against the documents it names as relevant, over distinct
 * documents in rank order (a document's second chunk adds nothing): with k the number of distinct
 * documents retrieved, recall@k = relevant retrieved / relevant named, precision@k = relevant
 * retrieved / k (0 when nothing was retrieved), MRR = 1 / rank of the first relevant document (0: none).
 * A source matches a name when its document id or its title equals it.
 */
export interface RetrievalScores {
  recallAtK: number;
  precisionAtK: number;
  mrr: number;
}

export function retrievalScores(sources: readonly { documentId: string; title: string }[], relevant: readonly string[]): RetrievalScores {
  const names = new Set(relevant);
  const seen = new Set<string>();
  const ranked = sources.filter((s) => !seen.has(s.documentId) && seen.add(s.documentId));
  const found = new Set<string>();
  let firstRank = 0;
  ranked.forEach((s, i) => {
    const name = names.has(s.documentId) ? s.documentId : names.has(s.title) ? s.title : undefined;
    if (name === undefined) return;
    found.add(name);
    if (firstRank === 0) firstRank = i + 1;
  });
  return {
    recallAtK: names.size === 0 ? 0 : found.size / names.size,
    precisionAtK: ranked.length === 0 ? 0 : ranked.filter((s) => names.has(s.documentId) || names.has(s.title)).length / ranked.length,
    mrr: firstRank === 0 ? 0 : 1 / firstRank,
  };
}
