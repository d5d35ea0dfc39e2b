/**
 * User text -> an FTS5 MATCH expression that never fails to parse.
 *
 * Policy: the text is split into words (runs of Unicode letters and digits, lowercased); everything
 * else (quotes, AND/OR/NOT/NEAR, `*`, `:`, `^`, `+`, `-`, parentheses, emoji, control characters)
 * only separates words, so user text can never be FTS5 syntax. Stop words are dropped (FTS5 has no
 * stop-word list of its own), unless the query holds nothing else; each remaining word appears once,
 * inside double quotes, and the words are ORed: BM25 ranks chunks by how many of them, and how rare,
 * they hold. Stemming happens in FTS5 (`porter unicode61`, migration 0008), to the query's words and
 * the indexed text alike.
 */

/**
 * English stop words: the NLTK list (179 words) without its contraction fragments, plus "also",
 * "may", "might", "must", "would", "could", "shall", "upon" and "among". A word of this list is
 * never a search term unless the query has no other word.
 */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    "a about above after again against all also am among an and any are as at be because been before being below between both but by " +
    "can could did do does doing down during each few for from further had has have having he her here hers herself him himself his how " +
    "i if in into is it its itself just may me might more most must my myself no nor not now of off on once only or other our ours " +
    "ourselves out over own same shall she should so some such than that the their theirs them themselves then there these they this " +
    "those through to too under until up upon very was we were what when where which while who whom why will with would you your yours " +
    "yourself yourselves"
  ).split(" "),
);

/** The longest word kept (longer runs are not words a person searches for). */
const MAX_WORD = 64;
/** Most distinct words in one MATCH expression (FTS5 cost grows with each OR branch). */
const MAX_TERMS = 256;

/** The query's search terms, in order of first appearance: lowercased, deduplicated, stop words dropped when others remain. */
export function keywordTerms(query: string): string[] {
  const words = [...new Set((query.normalize("NFKC").toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => w.length <= MAX_WORD))];
  const content = words.filter((w) => !STOP_WORDS.has(w));
  return (content.length > 0 ? content : words).slice(0, MAX_TERMS);
}

/** The FTS5 MATCH expression for `query`: its terms quoted and ORed; "" when it has no word at all. */
export function ftsMatchExpression(query: string): string {
  return keywordTerms(query).map((w) => `"${w}"`).join(" OR ");
}
