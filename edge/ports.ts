/**
 * Ports: the small interfaces through which the edge talks to the planes behind it.
 * Each has an in-process implementation (the embedded default) and may have an HTTP client
 * (the distributed deployment). The edge never knows which one it holds.
 */
import type { SearchHit, SearchRequest } from "../services/retrieval/types.ts";

export type { SearchHit, SearchRequest };

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface SamplingParams {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  seed?: number;
  stop: string[];
  /** Number of top alternatives to report per token; undefined = no logprobs. */
  logprobs?: number;
}

export interface GenerateRequest {
  /** Already-tokenized prompt (the edge renders and counts before it sends). */
  promptTokens: number[];
  params: SamplingParams;
  /** Adapter id resolved by the edge for the caller's tenant, if any. */
  adapter?: string;
  signal?: AbortSignal;
  /**
   * Also score the prompt: one `prompt` event, before any text, gives each prompt token's logprob
   * and this many top alternatives (for echo with logprobs). Undefined: no prompt logprobs.
   */
  promptLogprobs?: number;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

/** A prompt token's logprob given the tokens before it; the first token has none (null). */
export type PromptTokenLogprob = Omit<TokenLogprob, "logprob"> & { logprob: number | null; top: TokenLogprob[] };

export type GenerateEvent =
  | { type: "prompt"; logprobs: PromptTokenLogprob[] }
  | { type: "text"; text: string; tokenId: number; logprob?: TokenLogprob & { top: TokenLogprob[] } }
  | {
      type: "done";
      finishReason: "stop" | "length";
      promptTokens: number;
      completionTokens: number;
      /** Milliseconds from submit to first token, and total engine time. */
      timings: { queuedMs: number; firstTokenMs: number; totalMs: number };
    };

export interface ModelInfo {
  id: string;
  contextLength: number;
  vocabSize: number;
}

export interface Inference {
  model(): ModelInfo;
  /**
   * Renders messages with the model's chat template (or the documented fallback) and tokenizes the
   * result, adding special tokens only where the template does not write them itself.
   */
  encodeChat(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): { text: string; tokens: number[] };
  tokenize(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Token ids back to text, special tokens left out. */
  detokenize(tokens: number[]): string;
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent>;
  close(): Promise<void>;
}

/** Errors an `Inference` raises; the edge maps each kind to its HTTP status. */

/** The queue is full: the edge answers 429, not a hang. */
export class InferenceOverloadedError extends Error {}

/** The request cannot run as given (empty prompt, token out of range, adapter not served): 400. */
export class InferenceRequestError extends Error {}

/** The inference plane is shutting down or unreachable: 503. */
export class InferenceUnavailableError extends Error {}

/** Thrown before any work when prompt + max tokens exceed the context window. */
export class ContextLengthError extends Error {
  constructor(readonly promptTokens: number, readonly maxTokens: number, readonly contextLength: number) {
    super(
      `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + maxTokens} tokens ` +
        `(${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
    );
  }
}

export interface Retrieval {
  search(tenantId: string, request: SearchRequest): Promise<SearchHit[]>;
}

/** Reads the OpenAI `model` field for a tenant: `BASE`, `BASE:ADAPTER` or `ADAPTER`. */
export type ModelResolver = (
  model: string | undefined,
  tenant: { id: string; settings: Record<string, unknown> },
) => { base: string; adapterId?: string };
