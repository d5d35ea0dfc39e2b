/**
 * The job result's numbers (pure): each model's validation scores from its evaluation and its greedy
 * answers (ROUGE-L F and exact match of services/evaluation/metrics.ts, as /v1/compare scores them,
 * averaged over the examples answered), and the one-line summary of the job's final event.
 */
import type { FineTuningResult, ValidationScores } from "../ports/trainer.ts";
import { exactMatch, rouge } from "../services/evaluation/metrics.ts";
import type { Evaluation } from "./train-api.ts";

/** A reference and the two models' greedy answers to its prompt. */
export interface AnsweredExample {
  reference: string;
  base: string;
  adapter: string;
}

/** The report from the two evaluations and the answers (pure). */
export function buildReport(input: { validationExamples: number; bestStep: number; base: Evaluation; adapter: Evaluation; answers: readonly AnsweredExample[] }): FineTuningResult {
  const { answers } = input;
  return {
    validationExamples: input.validationExamples,
    answeredExamples: answers.length,
    bestStep: input.bestStep,
    base: validationScores(input.base, answers.map((a) => [a.base, a.reference])),
    adapter: validationScores(input.adapter, answers.map((a) => [a.adapter, a.reference])),
  };
}

/** One model's column: its evaluation, and the means of ROUGE-L F and exact match over its (prediction, reference) pairs. */
export function validationScores(evaluation: Evaluation, pairs: ReadonlyArray<readonly [prediction: string, reference: string]>): ValidationScores {
  const mean = (score: (prediction: string, reference: string) => number) => (pairs.length === 0 ? null : pairs.reduce((s, [p, r]) => s + score(p, r), 0) / pairs.length);
  return {
    loss: evaluation.loss,
    perplexity: Math.exp(evaluation.loss),
    tokenAccuracy: evaluation.tokenAccuracy,
    rougeL: mean((p, r) => rouge(p, r).rougeL.fmeasure),
    exactMatch: mean(exactMatch),
  };
}

/** One line for the job's final event. */
export function describeResult(r: FineTuningResult): string {
  const pair = (what: string, get: (s: ValidationScores) => number | null, digits: number) => `${what} ${format(get(r.base), digits)} -> ${format(get(r.adapter), digits)}`;
  const answered = r.answeredExamples === r.validationExamples ? "" : ` (answers: ${r.answeredExamples} of them)`;
  return (
    `Validation, base model -> adapter (step ${r.bestStep}) over ${r.validationExamples} example(s)${answered}: ` +
    [pair("loss", (s) => s.loss, 4), pair("perplexity", (s) => s.perplexity, 2), pair("token accuracy", (s) => s.tokenAccuracy, 3), pair("ROUGE-L", (s) => s.rougeL, 3), pair("exact match", (s) => s.exactMatch, 3)].join(", ")
  );
}

const format = (v: number | null, digits: number) => (v === null ? "n/a" : v.toFixed(digits));
