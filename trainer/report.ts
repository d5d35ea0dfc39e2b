/**
 * A succeeded job's result: the base model and the trained (best) adapter side by side on the
 * validation set (ports/trainer.ts `FineTuningResult`).
 *
 *   - loss, perplexity = exp(loss) and token accuracy come from the training loop's own evaluation
 *     (`evaluateLoss` over every counted token: step 0 is the base model, B = 0), never recomputed;
 *   - ROUGE-L (F) and exact match (services/evaluation/metrics.ts, as /v1/compare scores) of greedy
 *     answers against each example's reference, its last trained assistant turn, the prompt being the
 *     messages before it. The answers come from the serving engine (services/inference) with the
 *     adapter loaded as the serving cache loads adapters (`loadPeftAdapter` over the PEFT files the job
 *     publishes), through `encode` as chat renders prompts: what chat answers at temperature 0.
 *
 * Policy: at most `maxExamples` (default REPORT_MAX_EXAMPLES = 64) examples are answered, the first
 * ones of the validation set, so the report costs a bounded number of generations whatever the set's
 * size. Each answer may have the reference's length in tokens (as the chat template puts it after the
 * prompt) plus `marginTokens` (default 0): a model that stops (EOS) is scored as it stopped, one that
 * goes on past a right answer (stories260k never learned its EOS token) is cut where the reference ends,
 * so exact match reads "answered the reference first". Examples whose prompt leaves no room for that
 * are skipped for both models, so the two columns always score the same examples.
 */
import type { ChatMessage, SamplingParams } from "../ports/inference.ts";
import type { FineTuningResult } from "../ports/trainer.ts";
import { loadPeftAdapter } from "../services/adapters/peft.ts";
import { createEngine, unpinnedAdapters, type Engine } from "../services/inference/engine.ts";
import { loadDecoderConfig } from "../services/model/config.ts";
import { buildReport, type AnsweredExample } from "./report-scores.ts";
import type { ChatExample, TrainResult } from "./train-api.ts";

export { buildReport, describeResult, validationScores, type AnsweredExample } from "./report-scores.ts";

export const REPORT_MAX_EXAMPLES = 64;

export interface ReportInput {
  modelDir: string;
  /** The compile cache of the serving graphs (the server's, so they are found compiled). */
  cacheDir?: string;
  result: TrainResult;
}

export interface ReportOptions {
  maxExamples?: number;
  marginTokens?: number;
}

/** What the job runner calls once the adapter is published; undefined when there is nothing to report (no validation set). */
export type ReportFn = (input: ReportInput) => Promise<FineTuningResult | undefined>;

/** One example's prompt (the messages before its reference) and its reference answer. */
export interface AnswerPrompt {
  messages: ChatMessage[];
  reference: string;
}

const ADAPTER_ID = "trained";

/** The report of a trained adapter: loads it into a serving engine of its own, answers, scores, closes the engine. */
export async function reportTraining(input: ReportInput, options: ReportOptions = {}): Promise<FineTuningResult | undefined> {
  const { result } = input;
  if (result.validation.length === 0) return undefined;
  const prompts = result.validation.map(answerPrompt).filter((p): p is AnswerPrompt => p !== undefined).slice(0, options.maxExamples ?? REPORT_MAX_EXAMPLES);
  const shape = await loadDecoderConfig(input.modelDir);
  // No rank limit here: the catalog held the adapter to the node's when it published it.
  const weights = loadPeftAdapter(ADAPTER_ID, result.adapter, shape, { maxRank: Number.MAX_SAFE_INTEGER });
  const engine = await createEngine({
    modelDir: input.modelDir,
    cacheDir: input.cacheDir,
    adapters: unpinnedAdapters(async () => weights),
    maxLoraRank: Math.max(1, weights.maxRank),
    maxQueue: 2 * prompts.length + 1, // every answer is submitted at once
  });
  try {
    const answers = await answerBoth(engine, prompts, options.marginTokens ?? 0);
    return buildReport({ validationExamples: result.validation.length, bestStep: result.bestStep, base: result.baseEvaluation, adapter: result.bestEvaluation, answers });
  } finally {
    await engine.close();
  }
}

/** The messages before the example's last trained assistant turn, and that turn's text; undefined when it has none. */
export function answerPrompt(example: ChatExample): AnswerPrompt | undefined {
  const last = example.messages.findLastIndex((m) => m.role === "assistant" && m.weight !== 0);
  if (last < 0) return undefined;
  return { messages: example.messages.slice(0, last).map(({ role, content }) => ({ role, content })), reference: example.messages[last]!.content };
}

/** Greedy answers of the base model and of the adapter to each prompt that fits (all generated at once: the scheduler batches them). */
export async function answerBoth(engine: Engine, prompts: readonly AnswerPrompt[], marginTokens: number): Promise<AnsweredExample[]> {
  const rows = await Promise.all(
    prompts.map(async (p) => {
      const budget = answerBudget(engine, p) + marginTokens;
      const encoded = await engine.encode({ candidates: [{ messages: p.messages }], reserve: budget });
      if (!encoded.fits) return undefined;
      const [base, adapter] = await Promise.all([greedy(engine, encoded.tokens, budget), greedy(engine, encoded.tokens, budget, ADAPTER_ID)]);
      return { reference: p.reference, base, adapter };
    }),
  );
  return rows.filter((r): r is AnsweredExample => r !== undefined);
}

/** The reference's length in tokens where the chat template puts it: the whole conversation's tokens less the prompt's (at least 1). */
function answerBudget(engine: Engine, p: AnswerPrompt): number {
  const template = engine.chatTemplate;
  const tokens = (messages: ChatMessage[], addGenerationPrompt: boolean) => engine.tokenize(template.render(messages, { addGenerationPrompt }), { addSpecialTokens: template.encodeWithSpecialTokens }).length;
  return Math.max(1, tokens([...p.messages, { role: "assistant", content: p.reference }], false) - tokens(p.messages, true));
}

const GREEDY: Omit<SamplingParams, "maxTokens"> = { temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] };

/** The engine's greedy answer (trimmed) to `promptTokens`, with `adapter` or the base model. */
export async function greedy(engine: Engine, promptTokens: number[], maxTokens: number, adapter?: string): Promise<string> {
  let text = "";
  for await (const e of engine.generate({ promptTokens, params: { ...GREEDY, maxTokens }, adapter })) if (e.type === "text") text += e.text;
  return text.trim();
}
