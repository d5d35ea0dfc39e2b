import { badRequest } from "../errors.ts";
import {
  ContextLengthError,
  type GenerateEvent,
  type Inference,
  type Retrieval,
  type SamplingParams,
  type SearchHit,
  type TokenLogprob,
} from "../ports.ts";
import { effectiveSettings } from "../tenant-settings.ts";
import { buildMessages, normalizeMessages, retrievalQuery } from "./prompt.ts";
import type { GenerationBody } from "./schema.ts";
import { usesRetrieval, type Plan } from "./strategy.ts";

export interface CompletionDeps {
  inference: Inference;
  retrieval?: Retrieval;
}

/** Everything decided before the model runs: the prompt, its tokens, the sources and the sampling. */
export interface PreparedCompletion {
  plan: Plan;
  prompt: string;
  promptTokens: number[];
  params: SamplingParams;
  sources: SearchHit[];
  /** Retrieved chunks left out so the prompt fits the context window. */
  sourcesDropped: number;
  retrievalMs: number;
}

export interface CompletionResult {
  text: string;
  finishReason: "stop" | "length";
  logprobs: (TokenLogprob & { top: TokenLogprob[] })[];
  promptTokens: number;
  completionTokens: number;
  timings: { retrievalMs: number; queuedMs: number; firstTokenMs: number; totalMs: number; engineMs: number };
}

const DEFAULT_RETRIEVAL = { k: 4, mode: "hybrid" as const };

export async function prepareCompletion(
  deps: CompletionDeps,
  tenant: { id: string; settings: Record<string, unknown> },
  body: GenerationBody,
  plan: Plan,
): Promise<PreparedCompletion> {
  const settings = effectiveSettings(tenant.settings);
  const messages = normalizeMessages(body.messages);
  const started = performance.now();
  let sources: SearchHit[] = [];
  if (usesRetrieval(plan.strategy)) {
    if (!deps.retrieval) throw badRequest(`Strategy '${plan.strategy}' needs the knowledge base, which this deployment does not run.`, "strategy");
    const { k, mode } = body.retrieval ?? DEFAULT_RETRIEVAL;
    const query = retrievalQuery(messages);
    // No user text (null, empty or blank content) means nothing to search for, so no sources.
    if (query.trim() !== "") sources = await deps.retrieval.search(tenant.id, { query, k, mode });
  }
  const retrievalMs = performance.now() - started;

  const { contextLength } = deps.inference.model();
  const requested = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  // Fewer chunks rather than overflow: drop the lowest-ranked until the prompt and completion fit.
  for (let used = sources.length; ; used--) {
    const { text: prompt, tokens: promptTokens } = deps.inference.encodeChat(buildMessages(plan.strategy, settings, messages, sources.slice(0, used)), {
      addGenerationPrompt: true,
    });
    const maxTokens = requested ?? contextLength - promptTokens.length;
    if (promptTokens.length + maxTokens <= contextLength && maxTokens > 0) {
      return { plan, prompt, promptTokens, params: samplingParams(body, maxTokens), sources: sources.slice(0, used), sourcesDropped: sources.length - used, retrievalMs };
    }
    if (used === 0) throw new ContextLengthError(promptTokens.length, Math.max(requested ?? 1, 1), contextLength);
  }
}

function samplingParams(body: GenerationBody, maxTokens: number): SamplingParams {
  const stop = body.stop ?? [];
  return {
    maxTokens,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k ?? -1,
    minP: body.min_p ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    frequencyPenalty: body.frequency_penalty ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    seed: body.seed ?? undefined,
    stop: typeof stop === "string" ? [stop] : stop,
    logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined,
  };
}

/** Streams the model's events for a prepared completion. */
export function generate(deps: CompletionDeps, prepared: PreparedCompletion, signal?: AbortSignal): AsyncIterable<GenerateEvent> {
  return deps.inference.generate({ promptTokens: prepared.promptTokens, params: prepared.params, adapter: prepared.plan.adapterId, signal });
}

/** Runs a prepared completion to the end and gathers its text, logprobs, usage and timings. */
export async function collect(events: AsyncIterable<GenerateEvent>, prepared: PreparedCompletion, startedAt: number): Promise<CompletionResult> {
  let text = "";
  const logprobs: CompletionResult["logprobs"] = [];
  for await (const event of events) {
    if (event.type === "text") {
      text += event.text;
      if (event.logprob) logprobs.push(event.logprob);
      continue;
    }
    return {
      text,
      finishReason: event.finishReason,
      logprobs,
      promptTokens: event.promptTokens,
      completionTokens: event.completionTokens,
      timings: finalTimings(prepared, event, startedAt),
    };
  }
  throw new Error("the inference stream ended without a final event");
}

export function finalTimings(prepared: PreparedCompletion, done: Extract<GenerateEvent, { type: "done" }>, startedAt: number): CompletionResult["timings"] {
  return {
    retrievalMs: prepared.retrievalMs,
    queuedMs: done.timings.queuedMs,
    firstTokenMs: done.timings.firstTokenMs,
    engineMs: done.timings.totalMs,
    totalMs: performance.now() - startedAt,
  };
}
