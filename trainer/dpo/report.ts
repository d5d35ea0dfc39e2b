/**
 * A succeeded DPO job's result (ports/trainer.ts `PreferenceResult`): the reference and the trained
 * (best) adapter side by side on the validation pairs (./report-scores.ts has the numbers).
 *
 *   - margins, loss and reward accuracy come from the training loop's own evaluation of the best
 *     checkpoint (trainDpo's `bestMargins`, `bestEvaluation`), never recomputed;
 *   - the greedy answers come from a serving engine of its own with the adapter loaded as the serving
 *     cache loads adapters (`loadPeftAdapter`), as trainer/report.ts does for SFT. The reference answers
 *     with the base model, or, when the job continued an adapter, with that adapter (the DPO reference).
 *
 * Each answer is the assistant's turn begun with the pair's shared lead (the first words its two answers
 * have alike) and continued greedily for as many tokens as the longer of the two answers' rests, so the
 * answers are read where the preference is. At most `maxExamples` pairs (REPORT_MAX_EXAMPLES) are
 * answered, the first ones; a pair whose prompt leaves no room is left unanswered for both.
 */
import type { AdapterContent } from "../../ports/adapters.ts";
import type { PreferenceResult } from "../../ports/trainer.ts";
import { loadPeftAdapter } from "../../services/adapters/peft.ts";
import type { PreferenceExample } from "../../services/files/preference-data.ts";
import { createEngine, unpinnedAdapters, type Engine } from "../../services/inference/engine.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { greedy, REPORT_MAX_EXAMPLES, type ReportOptions } from "../report.ts";
import { buildPreferenceReport, sharedLead, type PairAnswers } from "./report-scores.ts";
import type { DpoTrainResult } from "./train.ts";

export interface PreferenceReportInput {
  modelDir: string;
  cacheDir?: string;
  result: DpoTrainResult;
  /** The adapter the job continued (the reference); none: the base model. */
  reference?: AdapterContent;
}

/** What the job runner calls for a DPO job once the adapter is published. */
export type PreferenceReportFn = (input: PreferenceReportInput) => Promise<PreferenceResult | undefined>;

const TRAINED = "trained";
const REFERENCE = "reference";

export async function reportPreferences(input: PreferenceReportInput, options: Pick<ReportOptions, "maxExamples"> = {}): Promise<PreferenceResult | undefined> {
  const { result } = input;
  if (result.validationPairs.length === 0) return undefined;
  const shape = await loadDecoderConfig(input.modelDir);
  const limits = { maxRank: Number.MAX_SAFE_INTEGER };
  const trained = loadPeftAdapter(TRAINED, result.adapter, shape, limits);
  const reference = input.reference ? loadPeftAdapter(REFERENCE, input.reference, shape, limits) : undefined;
  const answered = result.validationPairs.slice(0, options.maxExamples ?? REPORT_MAX_EXAMPLES);
  const engine = await createEngine({
    modelDir: input.modelDir,
    cacheDir: input.cacheDir,
    adapters: unpinnedAdapters(async (id) => (id === REFERENCE && reference ? reference : trained)),
    maxLoraRank: Math.max(1, trained.maxRank, reference?.maxRank ?? 0),
    maxQueue: 2 * answered.length + 1,
  });
  try {
    const answers = await Promise.all(answered.map((p) => answerPair(engine, p, reference ? REFERENCE : undefined)));
    return buildPreferenceReport({ pairs: result.validationPairs, margins: result.bestMargins, answers, bestStep: result.bestStep, reference: result.baseEvaluation, adapter: result.bestEvaluation });
  } finally {
    await engine.close();
  }
}

/** Both models' greedy continuations of the pair's shared lead; undefined when the prompt leaves no room. */
async function answerPair(engine: Engine, pair: PreferenceExample, referenceAdapter: string | undefined): Promise<PairAnswers | undefined> {
  const lead = sharedLead(pair.chosen, pair.rejected);
  const template = engine.chatTemplate;
  const messages = pair.messages.map(({ role, content }) => ({ role, content }));
  const prompt = engine.tokenize(template.render(messages, { addGenerationPrompt: true }) + lead, { addSpecialTokens: template.encodeWithSpecialTokens });
  const rest = (answer: string) => engine.tokenize(answer.slice(lead.length), { addSpecialTokens: false }).length;
  const budget = Math.max(1, rest(pair.chosen), rest(pair.rejected));
  if (prompt.length + budget > engine.info.contextLength) return undefined;
  const join = (text: string) => (lead === "" ? text : `${lead} ${text}`.trim());
  const [base, adapter] = await Promise.all([greedy(engine, prompt, budget, referenceAdapter), greedy(engine, prompt, budget, TRAINED)]);
  return { base: join(base), adapter: join(adapter) };
}
