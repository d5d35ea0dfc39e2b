/**
 * A succeeded job's result (`switchyard.result` of the job) as lines for the terminal: a supervised
 * job's base-vs-adapter scores in two rows; a DPO job's reference-vs-adapter summary and one line per
 * validation pair (its margin over the reference, where the adapter's greedy answer moved, both answers).
 * No result (none made, or the job has not succeeded): no lines.
 */
import type { JobJson } from "./server-api.ts";

type Result = NonNullable<JobJson["switchyard"]["result"]>;
type SupervisedResult = Exclude<Result, { method: "dpo" }>;
type DpoResult = Extract<Result, { method: "dpo" }>;

const num = (v: number | null, digits: number) => (v === null ? "n/a" : v.toFixed(digits));
const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(3)}`;
const quote = (s: string | null, width = 48) => (s === null ? "-" : JSON.stringify(s.length > width ? `${s.slice(0, width - 1)}…` : s));

export function resultLines(job: JobJson): string[] {
  const result = job.switchyard.result;
  if (!result) return [];
  return "method" in result ? dpoLines(result) : supervisedLines(result);
}

function supervisedLines(r: SupervisedResult): string[] {
  const row = (name: string, s: SupervisedResult["base"]) =>
    `  ${name.padEnd(8)} loss ${num(s.loss, 4)}  perplexity ${num(s.perplexity, 2)}  token acc ${num(s.token_accuracy, 3)}  ROUGE-L ${num(s.rouge_l, 3)}  EM ${num(s.exact_match, 3)}`;
  return [`result on ${r.validation_examples} validation example(s), ${r.answered_examples} answered (best step ${r.best_step}):`, row("base", r.base), row("adapter", r.adapter)];
}

function dpoLines(r: DpoResult): string[] {
  const positive = Math.round(r.preferred_share * r.validation_pairs);
  return [
    `result on ${r.validation_pairs} validation pair(s) (best step ${r.best_step}): DPO loss ${num(r.reference.loss, 4)} -> ${num(r.adapter.loss, 4)}, ` +
      `the adapter prefers the chosen answer on ${positive}/${r.validation_pairs} (mean margin ${signed(r.mean_margin)} over the reference)`,
    `  greedy answers closer to the chosen: base ${r.base_leans_chosen}/${r.answered_pairs}, adapter ${r.adapter_leans_chosen}/${r.answered_pairs}; ` +
      `moved toward the chosen ${r.moved_toward_chosen}, toward the rejected ${r.moved_toward_rejected}`,
    ...r.pairs.map((p, i) => `  pair ${i + 1}: margin ${signed(p.margin)} | moved ${p.moved.padEnd(8)} | base ${quote(p.base)} -> adapter ${quote(p.adapter)}`),
  ];
}
