import type { SearchHit, TokenLogprob } from "../../ports/index.ts";
import type { CompletionResult, PreparedCompletion } from "./completion.ts";

/** Shapes of OpenAI's chat completion objects, plus Switchyard's `switchyard` extension. */

export const completionId = () => `chatcmpl-${crypto.randomUUID().replace(/-/g, "")}`;
export const unixSeconds = () => Math.floor(Date.now() / 1000);

export function sourceJson(hit: SearchHit) {
  return {
    document_id: hit.documentId,
    chunk_id: hit.chunkId,
    title: hit.title,
    score: hit.score,
    heading_path: hit.headingPath,
    start_offset: hit.startOffset,
    end_offset: hit.endOffset,
  };
}

export function extensionJson(prepared: PreparedCompletion, adapterName: string | undefined, timings?: CompletionResult["timings"]) {
  return {
    strategy: prepared.plan.strategy,
    adapter: adapterName ?? null,
    sources: prepared.sources.map(sourceJson),
    sources_dropped: prepared.sourcesDropped,
    timings: timings && {
      retrieval_ms: round(timings.retrievalMs),
      queued_ms: round(timings.queuedMs),
      first_token_ms: round(timings.firstTokenMs),
      engine_ms: round(timings.engineMs),
      total_ms: round(timings.totalMs),
    },
  };
}

export function usageJson(promptTokens: number, completionTokens: number) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

function tokenLogprobJson(t: TokenLogprob) {
  return { token: t.token, logprob: t.logprob, bytes: t.bytes };
}

export function logprobsJson(entries: (TokenLogprob & { top: TokenLogprob[] })[]) {
  return { content: entries.map((e) => ({ ...tokenLogprobJson(e), top_logprobs: e.top.map(tokenLogprobJson) })), refusal: null };
}

export function completionJson(
  meta: { id: string; created: number; model: string; wantLogprobs: boolean },
  result: CompletionResult,
  extension: ReturnType<typeof extensionJson>,
) {
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: result.text, refusal: null },
        logprobs: meta.wantLogprobs ? logprobsJson(result.logprobs) : null,
        finish_reason: result.finishReason,
      },
    ],
    usage: usageJson(result.promptTokens, result.completionTokens),
    switchyard: extension,
  };
}

/** One `chat.completion.chunk`; `usage` is present (null until the last) when the caller asked for it. */
export function chunkJson(
  meta: { id: string; created: number; model: string; includeUsage: boolean },
  choice: { delta: Record<string, unknown>; logprobs?: unknown; finish_reason: "stop" | "length" | null } | null,
  extra: Record<string, unknown> = {},
) {
  return {
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: choice ? [{ index: 0, logprobs: null, ...choice }] : [],
    ...(meta.includeUsage ? { usage: null } : {}),
    ...extra,
  };
}

const round = (ms: number) => Math.round(ms * 100) / 100;
