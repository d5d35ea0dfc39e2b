/** The evaluation port: how good one answer is against a reference (compare's scores). */

/** Every score of one answer against a reference. All values lie in [0, 1]. */
export interface AnswerScores {
  /** ROUGE-1 F1 (rouge-score, no stemming). */
  rouge1: number;
  /** ROUGE-2 F1. */
  rouge2: number;
  /** ROUGE-L F1 (sentence-level LCS). */
  rougeL: number;
  /** sacreBLEU sentence BLEU (13a, exp smoothing, effective order) / 100, capped at 1 against round-off. */
  bleu: number;
  /** SQuAD v1.1 token F1. */
  tokenF1: number;
  /** SQuAD v1.1 exact match: 1 or 0. */
  exactMatch: number;
  /** Share of answer content tokens found in the retrieved context; only when a context is given. */
  contextSupport?: number;
}

export interface Evaluation {
  /** invalid_request when the reference is blank. */
  score(answer: string, reference: string, context?: string): Promise<AnswerScores>;
}
