/**
 * A DPO job's result numbers (pure; ports/trainer.ts `PreferenceResult`): per validation pair the
 * adapter's log-prob margin over the reference (from the loop's evaluation of the best checkpoint), and
 * the greedy answers of the reference and of the adapter with where they lean.
 *
 * Leaning: an answer's preference score is ROUGE-L F (services/evaluation/metrics.ts) against the
 * chosen answer minus against the rejected one; > 0 leans to the chosen. The adapter's answer "moved"
 * toward the chosen answer when its score is above the base answer's, toward the rejected when below,
 * else (or when the pair was not answered) "none". Both answers continue from where the pair's two
 * answers part (their shared first words), so the score reads the words the preference is about.
 */
import type { PreferencePairResult, PreferenceResult } from "../../ports/trainer.ts";
import type { PreferenceExample } from "../../services/files/preference-data.ts";
import { rouge } from "../../services/evaluation/metrics.ts";
import type { Evaluation } from "../train-api.ts";

/** One pair's greedy answers (undefined: not answered). */
export interface PairAnswers {
  base: string;
  adapter: string;
}

/** ROUGE-L F to the chosen answer minus to the rejected one. */
export function preferenceScore(answer: string, chosen: string, rejected: string): number {
  return rouge(answer, chosen).rougeL.fmeasure - rouge(answer, rejected).rougeL.fmeasure;
}

/** Where the adapter's answer moved from the base's (see the header). */
export function movement(answers: PairAnswers | undefined, chosen: string, rejected: string): PreferencePairResult["moved"] {
  if (!answers) return "none";
  const delta = preferenceScore(answers.adapter, chosen, rejected) - preferenceScore(answers.base, chosen, rejected);
  return delta > 0 ? "chosen" : delta < 0 ? "rejected" : "none";
}

/** The words `chosen` and `rejected` begin with alike: where the greedy answers start (empty when they differ at once). */
export function sharedLead(chosen: string, rejected: string): string {
  const a = chosen.split(" ");
  const b = rejected.split(" ");
  let n = 0;
  while (n < a.length - 1 && n < b.length - 1 && a[n] === b[n]) n++;
  return a.slice(0, n).join(" ");
}

/** The prompt shown for a pair: its last user message. */
export const pairPrompt = (pair: PreferenceExample) => pair.messages.findLast((m) => m.role === "user")?.content ?? "";

export interface PreferenceReportInput {
  pairs: readonly PreferenceExample[];
  /** Index-aligned with `pairs`: the best checkpoint's margin over the reference. */
  margins: readonly number[];
  /** Index-aligned with `pairs`; undefined where a pair was not answered. */
  answers: ReadonlyArray<PairAnswers | undefined>;
  bestStep: number;
  /** The loop's evaluations: `loss` the DPO loss, `tokenAccuracy` the reward accuracy. */
  reference: Evaluation;
  adapter: Evaluation;
}

export function buildPreferenceReport(input: PreferenceReportInput): PreferenceResult {
  const { pairs, margins, answers } = input;
  if (margins.length !== pairs.length) throw new Error(`${margins.length} margins for ${pairs.length} validation pairs`);
  const rows: PreferencePairResult[] = pairs.map((p, i) => ({
    prompt: pairPrompt(p),
    chosen: p.chosen,
    rejected: p.rejected,
    margin: margins[i]!,
    base: answers[i]?.base ?? null,
    adapter: answers[i]?.adapter ?? null,
    moved: movement(answers[i], p.chosen, p.rejected),
  }));
  const answered = rows.filter((r) => r.base !== null && r.adapter !== null);
  const leans = (answer: (r: PreferencePairResult) => string | null) => answered.filter((r) => preferenceScore(answer(r)!, r.chosen, r.rejected) > 0).length;
  const n = Math.max(1, rows.length);
  return {
    method: "dpo",
    validationPairs: rows.length,
    answeredPairs: answered.length,
    bestStep: input.bestStep,
    reference: { loss: input.reference.loss, rewardAccuracy: input.reference.tokenAccuracy },
    adapter: { loss: input.adapter.loss, rewardAccuracy: input.adapter.tokenAccuracy },
    meanMargin: margins.reduce((s, m) => s + m, 0) / n,
    preferredShare: margins.filter((m) => m > 0).length / n,
    baseLeansChosen: leans((r) => r.base),
    adapterLeansChosen: leans((r) => r.adapter),
    movedTowardChosen: rows.filter((r) => r.moved === "chosen").length,
    movedTowardRejected: rows.filter((r) => r.moved === "rejected").length,
    pairs: rows,
  };
}

/** One line for the job's final event. */
export function describePreferenceResult(r: PreferenceResult): string {
  const positive = Math.round(r.preferredShare * r.validationPairs);
  return (
    `Validation, reference -> adapter (step ${r.bestStep}) over ${r.validationPairs} pair(s): DPO loss ${r.reference.loss.toFixed(4)} -> ${r.adapter.loss.toFixed(4)}, ` +
    `the adapter prefers the chosen answer on ${positive}/${r.validationPairs} (mean margin ${r.meanMargin.toFixed(3)}); ` +
    `greedy answers closer to the chosen: ${r.baseLeansChosen} -> ${r.adapterLeansChosen} of ${r.answeredPairs}, moved toward the chosen on ${r.movedTowardChosen}, toward the rejected on ${r.movedTowardRejected}`
  );
}
