/**
 * Answer-quality metrics shared by `/v1/compare` and the trainer's evaluation.
 *
 * Each metric is a faithful port of the implementation people quote numbers from:
 * - ROUGE-N / ROUGE-L: Google's `rouge-score` package (rouge_scorer.py, tokenize.py).
 * - BLEU: sacreBLEU 2.x (`BLEU.corpus_score` / `sentence_score`, 13a tokenizer).
 * - Token F1 and exact match: the official SQuAD v1.1 evaluation script.
 * - Context support: our own, defined on SQuAD-normalized tokens (see `contextSupport`).
 *
 * Every function takes `(prediction, reference)` in that order, whatever order the
 * original used. All functions are pure and runtime-agnostic (no Node APIs).
 */

import type { AnswerScores } from "../../ports/evaluation.ts";
import { porterStem } from "./porter-stemmer.ts";

/** Bad input to a metric (for example an empty BLEU reference). */
export class MetricInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MetricInputError";
  }
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/** The characters Python's `str.split()` treats as whitespace (JS `\s` differs slightly). */
const PY_WHITESPACE = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** Python's `str.split()` with no argument: split on runs of whitespace, drop empty ends. */
function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((token) => token.length > 0);
}

/** Multiset of items, keyed by string. */
function countItems(items: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

/** Size of the multiset intersection (Python's `sum((a & b).values())`). */
function overlapCount(a: Map<string, number>, b: Map<string, number>): number {
  let common = 0;
  for (const [item, count] of a) common += Math.min(count, b.get(item) ?? 0);
  return common;
}

/** Harmonic mean of precision and recall, 0 when both are 0 (rouge-score's `scoring.fmeasure`). */
function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

// ---------------------------------------------------------------------------
// ROUGE (rouge-score)
// ---------------------------------------------------------------------------

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

export interface RougeScores {
  rouge1: RougeScore;
  rouge2: RougeScore;
  rougeL: RougeScore;
}

export interface RougeOptions {
  /** Porter-stem tokens longer than 3 characters, as `RougeScorer(use_stemmer=True)`. Default false. */
  useStemmer?: boolean;
}

/**
 * rouge-score's tokenizer: lowercase, every run of characters outside [a-z0-9] becomes a
 * space (so non-ASCII letters are dropped), split on whitespace, optionally stem tokens
 * longer than 3 characters, keep only non-empty [a-z0-9]+ tokens.
 */
export function rougeTokenize(text: string, options: RougeOptions = {}): string[] {
  const tokens = text.toLowerCase().replace(/[^a-z0-9]+/g, " ").split(/\s+/);
  const stemmed = options.useStemmer ? tokens.map((token) => (token.length > 3 ? porterStem(token) : token)) : tokens;
  return stemmed.filter((token) => /^[a-z0-9]+$/.test(token));
}

function ngrams(tokens: readonly string[], n: number): string[] {
  const grams: string[] = [];
  // A space cannot occur inside a token, so it is a safe n-gram separator.
  for (let i = 0; i + n <= tokens.length; i++) grams.push(tokens.slice(i, i + n).join(" "));
  return grams;
}

/** ROUGE-N from token lists (rouge-score's `_score_ngrams`). */
export function rougeNFromTokens(prediction: readonly string[], reference: readonly string[], n: number): RougeScore {
  if (!Number.isInteger(n) || n < 1) throw new MetricInputError(`ROUGE-N needs a positive integer n, got ${n}`);
  const predictionGrams = countItems(ngrams(prediction, n));
  const referenceGrams = countItems(ngrams(reference, n));
  const common = overlapCount(referenceGrams, predictionGrams);
  const precision = common / Math.max(prediction.length - n + 1, 1);
  const recall = common / Math.max(reference.length - n + 1, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** Length of the longest common subsequence, in O(min) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let previous = new Int32Array(b.length + 1);
  let current = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      current[j] = a[i - 1] === b[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], current[j - 1]);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length];
}

/** ROUGE-L (sentence-level LCS, rouge-score's `_score_lcs`) from token lists. */
export function rougeLFromTokens(prediction: readonly string[], reference: readonly string[]): RougeScore {
  if (prediction.length === 0 || reference.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(reference, prediction);
  const precision = lcs / prediction.length;
  const recall = lcs / reference.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** ROUGE-1, ROUGE-2 and ROUGE-L of `prediction` against `reference`, as rouge-score computes them. */
export function rouge(prediction: string, reference: string, options: RougeOptions = {}): RougeScores {
  const predictionTokens = rougeTokenize(prediction, options);
  const referenceTokens = rougeTokenize(reference, options);
  return {
    rouge1: rougeNFromTokens(predictionTokens, referenceTokens, 1),
    rouge2: rougeNFromTokens(predictionTokens, referenceTokens, 2),
    rougeL: rougeLFromTokens(predictionTokens, referenceTokens),
  };
}

// ---------------------------------------------------------------------------
// BLEU (sacreBLEU)
// ---------------------------------------------------------------------------

export type BleuTokenizer = "13a" | "none";
export type BleuSmoothing = "exp" | "floor" | "add-k" | "none";

export interface BleuOptions {
  /** "13a" (mteval-v13a, sacreBLEU's default) or "none" (split on whitespace only). */
  tokenize?: BleuTokenizer;
  /** "exp" is sacreBLEU's default for both corpus and sentence BLEU. */
  smoothMethod?: BleuSmoothing;
  /** For "floor" (default 0.1) and "add-k" (default 1). */
  smoothValue?: number;
  /** Drop n-gram orders the hypothesis has none of. Default: false for corpus, true for sentence BLEU. */
  effectiveOrder?: boolean;
  lowercase?: boolean;
  /** Default 4. */
  maxNgramOrder?: number;
}

export interface BleuResult {
  /** BLEU on sacreBLEU's 0..100 scale. */
  score: number;
  /** Matched n-grams per order (1..maxNgramOrder). */
  counts: number[];
  /** Hypothesis n-grams per order. */
  totals: number[];
  /** Per-order precisions on the 0..100 scale, after smoothing. */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  sysLen: number;
  refLen: number;
}

const SMOOTH_DEFAULTS: Record<BleuSmoothing, number> = { exp: 0, none: 0, floor: 0.1, "add-k": 1 };

/** sacreBLEU's `my_log`: log with log(0) floored to a huge negative number. */
const flooredLog = (x: number): number => (x === 0 ? -9999999999 : Math.log(x));

const TOKENIZE_13A_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // Split off most ASCII punctuation and symbols (mteval-v13a's language-dependent part).
  [/([\{-\~\[-\` -\&\(-\+\:-\@\/])/g, " $1 "],
  // Period and comma, unless preceded by a digit.
  [/([^0-9])([\.,])/g, "$1 $2 "],
  // Period and comma, unless followed by a digit.
  [/([\.,])([^0-9])/g, " $1 $2"],
  // Dash when preceded by a digit.
  [/([0-9])(-)/g, "$1 $2 "],
];

/** sacreBLEU's `Tokenizer13a` (mteval-v13a.pl), returning the tokens. */
export function tokenize13a(line: string): string[] {
  let text = line
    .replaceAll("<skipped>", "")
    .replaceAll("-\n", "")
    .replaceAll("\n", " ")
    .replaceAll("&quot;", '"')
    .replaceAll("&amp;", "&")
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">");
  text = ` ${text} `;
  for (const [pattern, replacement] of TOKENIZE_13A_RULES) text = text.replace(pattern, replacement);
  return pySplit(text);
}

/** sacreBLEU's `_preprocess_segment`: optional lowercasing, strip trailing space, tokenize. */
function bleuTokens(segment: string, options: BleuOptions): string[] {
  const text = (options.lowercase ? segment.toLowerCase() : segment).trimEnd();
  return (options.tokenize ?? "13a") === "13a" ? tokenize13a(text) : pySplit(text);
}

/** Counts of every n-gram of each order 1..maxOrder (index order - 1). Tokens hold no spaces. */
function ngramsByOrder(tokens: readonly string[], maxOrder: number): Map<string, number>[] {
  return Array.from({ length: maxOrder }, (_, index) => countItems(ngrams(tokens, index + 1)));
}

/** The reference length closest to the hypothesis length; ties go to the shorter one. */
function closestRefLength(hypLength: number, refLengths: readonly number[]): number {
  let best = refLengths[0];
  for (const length of refLengths) {
    const diff = Math.abs(hypLength - length);
    const bestDiff = Math.abs(hypLength - best);
    if (diff < bestDiff || (diff === bestDiff && length < best)) best = length;
  }
  return best;
}

interface SegmentStats {
  hypLen: number;
  refLen: number;
  correct: number[];
  total: number[];
}

function segmentStats(hypothesis: string, references: readonly string[], options: BleuOptions, maxOrder: number): SegmentStats {
  // Each reference n-gram counts up to its largest count in any one reference.
  const refNgrams = Array.from({ length: maxOrder }, () => new Map<string, number>());
  const refLengths: number[] = [];
  for (const reference of references) {
    const tokens = bleuTokens(reference, options);
    refLengths.push(tokens.length);
    ngramsByOrder(tokens, maxOrder).forEach((grams, order) => {
      for (const [gram, count] of grams) refNgrams[order].set(gram, Math.max(refNgrams[order].get(gram) ?? 0, count));
    });
  }
  const hypTokens = bleuTokens(hypothesis, options);
  const hypNgrams = ngramsByOrder(hypTokens, maxOrder);
  return {
    hypLen: hypTokens.length,
    refLen: closestRefLength(hypTokens.length, refLengths),
    correct: hypNgrams.map((grams, order) => overlapCount(grams, refNgrams[order])),
    total: hypNgrams.map((_, order) => Math.max(hypTokens.length - order, 0)),
  };
}

/**
 * BLEU from sufficient statistics with smoothing (sacreBLEU's `BLEU.compute_bleu`; like it, no
 * smoothing unless asked). Smoothing follows Chen & Cherry (2014): floor = method 1, add-k =
 * method 2, exp = method 3 (NIST mteval-v13a).
 */
export function computeBleu(
  correct: readonly number[],
  total: readonly number[],
  sysLen: number,
  refLen: number,
  options: Pick<BleuOptions, "smoothMethod" | "smoothValue" | "effectiveOrder" | "maxNgramOrder"> = {},
): BleuResult {
  const maxOrder = options.maxNgramOrder ?? 4;
  if (correct.length < maxOrder || total.length < maxOrder) {
    throw new MetricInputError(`BLEU statistics need ${maxOrder} orders, got ${correct.length} matched and ${total.length} total`);
  }
  const method = options.smoothMethod ?? "none";
  const smoothValue = options.smoothValue ?? SMOOTH_DEFAULTS[method];
  const counts = correct.slice(0, maxOrder);
  const totals = total.slice(0, maxOrder);
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(maxOrder).fill(0);
  const result = (score: number): BleuResult => ({ score, counts, totals, precisions, bp, sysLen, refLen });

  // No matches at all: 0, whatever the smoothing (sacreBLEU #141).
  if (!counts.some((count) => count > 0)) return result(0);

  let expDivisor = 1;
  let order = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (method === "add-k" && n > 1) {
      counts[n - 1] += smoothValue;
      totals[n - 1] += smoothValue;
    }
    if (totals[n - 1] === 0) break;
    if (options.effectiveOrder) order = n;
    if (counts[n - 1] === 0) {
      if (method === "exp") {
        expDivisor *= 2;
        precisions[n - 1] = 100 / (expDivisor * totals[n - 1]);
      } else if (method === "floor") {
        precisions[n - 1] = (100 * smoothValue) / totals[n - 1];
      }
    } else {
      precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
    }
  }
  const logMean = precisions.slice(0, order).reduce((sum, p) => sum + flooredLog(p), 0) / order;
  return result(bp * Math.exp(logMean));
}

/**
 * Corpus BLEU as `sacrebleu.corpus_bleu(hypotheses, references)`: `references` is a list of
 * reference streams, each as long as `hypotheses` (stream k holds the k-th reference of every
 * segment). Empty strings mark a missing reference; every segment needs at least one.
 * Defaults: 13a tokenization, 4-grams, "exp" smoothing, no effective order, mixed case.
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly (readonly string[])[], options: BleuOptions = {}): BleuResult {
  if (references.length === 0) throw new MetricInputError("BLEU needs at least one reference stream");
  for (const stream of references) {
    if (stream.length !== hypotheses.length) {
      throw new MetricInputError(`BLEU reference stream has ${stream.length} segments, hypotheses have ${hypotheses.length}`);
    }
  }
  const maxOrder = options.maxNgramOrder ?? 4;
  if (!Number.isInteger(maxOrder) || maxOrder < 1) throw new MetricInputError(`BLEU max n-gram order must be a positive integer, got ${maxOrder}`);
  const sums: SegmentStats = { hypLen: 0, refLen: 0, correct: new Array(maxOrder).fill(0), total: new Array(maxOrder).fill(0) };
  hypotheses.forEach((hypothesis, index) => {
    const segmentRefs = references.map((stream) => stream[index]).filter((ref) => ref !== "");
    if (segmentRefs.length === 0) throw new MetricInputError(`BLEU segment ${index} has no non-empty reference`);
    const stats = segmentStats(hypothesis, segmentRefs, options, maxOrder);
    sums.hypLen += stats.hypLen;
    sums.refLen += stats.refLen;
    for (let n = 0; n < maxOrder; n++) {
      sums.correct[n] += stats.correct[n];
      sums.total[n] += stats.total[n];
    }
  });
  return computeBleu(sums.correct, sums.total, sums.hypLen, sums.refLen, {
    smoothMethod: options.smoothMethod ?? "exp",
    smoothValue: options.smoothValue,
    effectiveOrder: options.effectiveOrder ?? false,
    maxNgramOrder: maxOrder,
  });
}

/**
 * Sentence BLEU as `sacrebleu.sentence_bleu(hypothesis, references)`: the corpus computation on
 * one segment with "exp" smoothing and effective order on by default.
 */
export function sentenceBleu(hypothesis: string, references: readonly string[], options: BleuOptions = {}): BleuResult {
  return corpusBleu(
    [hypothesis],
    references.map((reference) => [reference]),
    { ...options, effectiveOrder: options.effectiveOrder ?? true },
  );
}

// ---------------------------------------------------------------------------
// Token F1 and exact match (SQuAD v1.1 evaluation script)
// ---------------------------------------------------------------------------

/** Python's `string.punctuation`. */
const ASCII_PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
/** Python 3's `\b(a|an|the)\b`: word characters are Unicode letters, digits and underscore. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** SQuAD's `normalize_answer`: lowercase, drop ASCII punctuation, drop articles, squeeze whitespace. */
export function normalizeAnswer(text: string): string {
  const lowered = text.toLowerCase();
  const withoutPunctuation = lowered.replace(ASCII_PUNCTUATION, "");
  const withoutArticles = withoutPunctuation.replace(ARTICLES, " ");
  return pySplit(withoutArticles).join(" ");
}

/** The normalized answer split into tokens. */
export function answerTokens(text: string): string[] {
  return pySplit(normalizeAnswer(text));
}

/** SQuAD v1.1 `f1_score`: bag-of-tokens F1 on normalized answers; 0 when nothing overlaps. */
export function tokenF1(prediction: string, reference: string): number {
  const predictionTokens = answerTokens(prediction);
  const referenceTokens = answerTokens(reference);
  const common = overlapCount(countItems(predictionTokens), countItems(referenceTokens));
  if (common === 0) return 0;
  return fmeasure(common / predictionTokens.length, common / referenceTokens.length);
}

/** SQuAD v1.1 `exact_match_score` as a number: 1 when the normalized answers are equal, else 0. */
export function exactMatch(prediction: string, reference: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(reference) ? 1 : 0;
}

// ---------------------------------------------------------------------------
// Context support (RAG)
// ---------------------------------------------------------------------------

/**
 * NLTK's English stopword list, normalized like answers (so "don't" becomes "dont"), without
 * the bare contraction halves NLTK keeps for its own tokenizer ("won", "haven", "don", "d", ...):
 * our normalization never splits "won't", so here those only occur as real words.
 * Function words say nothing about whether the context backs the answer.
 */
const STOPWORDS: ReadonlySet<string> = new Set(
  (
    "i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves " +
    "he him his himself she she's her hers herself it it's its itself they them their theirs themselves " +
    "what which who whom this that that'll these those am is are was were be been being have has had having " +
    "do does did doing a an the and but if or because as until while of at by for with about against between " +
    "into through during before after above below to from up down in out on off over under again further then " +
    "once here there when where why how all any both each few more most other some such no nor not only own " +
    "same so than too very can will just don't should should've now aren't couldn't didn't doesn't hadn't " +
    "hasn't haven't isn't mightn't mustn't needn't shan't shouldn't wasn't weren't won't wouldn't"
  )
    .split(" ")
    .map(normalizeAnswer)
    .filter((word) => word.length > 0),
);

/** The answer tokens that carry content: SQuAD-normalized, minus NLTK English stopwords. */
export function contentTokens(text: string): string[] {
  return answerTokens(text).filter((token) => !STOPWORDS.has(token));
}

/**
 * Share of the answer's content tokens (SQuAD-normalized, NLTK English stopwords removed,
 * counted with repetition) that occur anywhere in the retrieved context (normalized the same
 * way). 1 means every content word of the answer appears in the context; 0 when none does,
 * or when the answer has no content tokens at all (nothing in it is supported).
 */
export function contextSupport(answer: string, context: string): number {
  const tokens = contentTokens(answer);
  if (tokens.length === 0) return 0;
  const contextVocabulary = new Set(answerTokens(context));
  return tokens.filter((token) => contextVocabulary.has(token)).length / tokens.length;
}

// ---------------------------------------------------------------------------
// All at once
// ---------------------------------------------------------------------------

/** Every score of one answer against a reference (the evaluation port's type). */
export type Scores = AnswerScores;

/**
 * Scores `answer` against `reference` with every metric; adds context support when the
 * retrieved `context` is given. Throws `MetricInputError` when the reference is blank.
 */
export function scoreAnswer(answer: string, reference: string, context?: string): Scores {
  if (reference.trim() === "") throw new MetricInputError("reference answer must not be empty");
  const rougeScores = rouge(answer, reference);
  const scores: Scores = {
    rouge1: rougeScores.rouge1.fmeasure,
    rouge2: rougeScores.rouge2.fmeasure,
    rougeL: rougeScores.rougeL.fmeasure,
    // exp(log(100)) is 100.00000000000004 in IEEE doubles (in sacreBLEU too); keep the [0, 1] promise.
    bleu: Math.min(sentenceBleu(answer, [reference]).score / 100, 1),
    tokenF1: tokenF1(answer, reference),
    exactMatch: exactMatch(answer, reference),
  };
  if (context !== undefined) scores.contextSupport = contextSupport(answer, context);
  return scores;
}
