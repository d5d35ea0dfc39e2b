import { badRequest } from "../errors.ts";
import {
  ContextLengthError,
  type GenerateEvent,
  type Inference,
  type Knowledge,
  type PromptSource,
  type PromptTokenLogprob,
  type SamplingParams,
  type SearchHit,
  type TokenLogprob,
} from "../../ports/index.ts";
import { effectiveSettings } from "../tenant-settings.ts";
import { buildMessages, normalizeMessages, retrievalQuery } from "./prompt.ts";
import { DEFAULT_RETRIEVAL } from "./retrieval-options.ts";
import type { GenerationBody, SamplingBody } from "./schema.ts";
import { usesRetrieval, type Plan } from "./strategy.ts";

export interface CompletionDeps {
  inference: Inference;
  retrieval?: Pick<Knowledge, "search">;
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
  /** Alternatives per prompt token when the prompt is to be scored too (echo with logprobs). */
  promptLogprobs?: number;
}

export interface CompletionResult {
  text: string;
  finishReason: "stop" | "length";
  logprobs: (TokenLogprob & { top: TokenLogprob[] })[];
  /** Each prompt token's logprob, when the request asked for them. */
  promptLogprobs?: PromptTokenLogprob[];
  promptTokens: number;
  completionTokens: number;
  timings: { retrievalMs: number; queuedMs: number; firstTokenMs: number; totalMs: number; engineMs: number };
}


export async function prepareCompletion(
  deps: CompletionDeps,
  tenant: { id: string; settings: Record<string, unknown> },
  body: GenerationBody,
  plan: Plan,
): Promise<PreparedCompletion> {
  const settings = effectiveSettings(tenant.settings);
  const messages = normalizeMessages(body.messages);
  const { sources, retrievalMs } = await retrieveSources(deps, tenant.id, plan, retrievalQuery(messages), body.retrieval);
  const requested = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  const fitted = await fitPrompt(deps.inference, sources, requested, (used) => ({ messages: buildMessages(plan.strategy, settings, messages, used) }), {
    virtualTokens: plan.virtualTokens,
  });
  const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
  return { plan, ...fitted, params: samplingParams(body, fitted.maxTokens, logprobs), retrievalMs };
}

/** The chunks a RAG strategy puts in the prompt (none for the others), and how long the search took. */
export async function retrieveSources(
  deps: CompletionDeps,
  tenantId: string,
  plan: Plan,
  query: string,
  retrieval: SamplingBody["retrieval"],
): Promise<{ sources: SearchHit[]; retrievalMs: number }> {
  const started = performance.now();
  if (!usesRetrieval(plan.strategy)) return { sources: [], retrievalMs: 0 };
  if (!deps.retrieval) throw badRequest(`Strategy '${plan.strategy}' needs the knowledge base, which this deployment does not run.`, "strategy");
  const { k, mode, fusion, weights, expansion, max_chunks_per_document: maxChunksPerDocument } = retrieval ?? DEFAULT_RETRIEVAL;
  // No user text (null, empty or blank content) means nothing to search for, so no sources.
  const sources = query.trim() === "" ? [] : await deps.retrieval.search(tenantId, { query, k, mode, fusion, weights, expansion, maxChunksPerDocument });
  return { sources, retrievalMs: performance.now() - started };
}

export interface FittedPrompt {
  prompt: string;
  promptTokens: number[];
  maxTokens: number;
  sources: SearchHit[];
  sourcesDropped: number;
}

/**
 * Encodes the prompt with as many sources as fit, in one call: fewer chunks rather than overflow,
 * dropping the lowest-ranked until the prompt and the completion (`requested`, else the rest of the
 * window) fit. A prompt-tuning adapter's `virtualTokens` sit ahead of the prompt, so they count too.
 */
export async function fitPrompt(
  inference: Inference,
  sources: SearchHit[],
  requested: number | undefined,
  render: (sources: SearchHit[]) => PromptSource,
  options: { offsets?: boolean; virtualTokens?: number } = {},
): Promise<FittedPrompt & { offsets?: number[] }> {
  const { contextLength } = await inference.model();
  const virtual = options.virtualTokens ?? 0;
  const candidates = Array.from({ length: sources.length + 1 }, (_, dropped) => render(sources.slice(0, sources.length - dropped)));
  const encoded = await inference.encode({ candidates, reserve: (requested ?? 1) + virtual, offsets: options.offsets });
  const used = sources.length - encoded.index;
  if (!encoded.fits) throw new ContextLengthError(encoded.tokens.length + virtual, Math.max(requested ?? 1, 1), contextLength);
  const maxTokens = requested ?? contextLength - virtual - encoded.tokens.length;
  return { prompt: encoded.text, promptTokens: encoded.tokens, offsets: encoded.offsets, maxTokens, sources: sources.slice(0, used), sourcesDropped: encoded.index };
}

/** The engine's sampling parameters; `logprobs` is the number of alternatives per token (undefined: none). */
export function samplingParams(body: SamplingBody, maxTokens: number, logprobs: number | undefined): SamplingParams {
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
    logprobs,
  };
}

/** Streams the model's events for a prepared completion. */
export function generate(deps: CompletionDeps, prepared: PreparedCompletion, signal?: AbortSignal): AsyncIterable<GenerateEvent> {
  const { promptTokens, params, promptLogprobs } = prepared;
  return deps.inference.generate({ promptTokens, params, adapter: prepared.plan.adapterId, signal, promptLogprobs });
}

/** Runs a prepared completion to the end and gathers its text, logprobs, usage and timings. */
export async function collect(events: AsyncIterable<GenerateEvent>, prepared: PreparedCompletion, startedAt: number): Promise<CompletionResult> {
  let text = "";
  const logprobs: CompletionResult["logprobs"] = [];
  let promptLogprobs: PromptTokenLogprob[] | undefined;
  for await (const event of events) {
    if (event.type === "prompt") {
      promptLogprobs = event.logprobs;
      continue;
    }
    if (event.type === "text") {
      text += event.text;
      if (event.logprob) logprobs.push(event.logprob);
      continue;
    }
    return {
      text,
      promptLogprobs,
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
