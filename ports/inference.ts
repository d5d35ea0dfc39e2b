/**
 * The inference port: what the edge asks of a node that serves one base model (and its adapters).
 * Every call is async and coarse, so an HTTP client can implement it: a request renders and tokenizes
 * its prompt in one `encode` call, then streams `generate`.
 */

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ModelInfo {
  id: string;
  contextLength: number;
  vocabSize: number;
}

/** One way to state a prompt: a chat (rendered with the model's template and a generation prompt), a text (tokenized with special tokens, e.g. BOS), or token ids as given. */
export type PromptSource = { messages: ChatMessage[] } | { text: string } | { tokens: number[] };

export interface EncodeRequest {
  /** Tried in order; the first whose tokens leave room for `reserve` completion tokens wins. */
  candidates: PromptSource[];
  /** Completion tokens the prompt must leave room for; default 1. */
  reserve?: number;
  /** Also give, per token, where its text starts in `text` (for echo with logprobs). */
  offsets?: boolean;
}

export interface EncodedPrompt {
  /** Which candidate this is; the last one when none fits. */
  index: number;
  /** False when even the last candidate leaves no room for `reserve` tokens. */
  fits: boolean;
  text: string;
  tokens: number[];
  /** offsets[i]: the length of the text tokens[0..i) decode to, at most text's length (when asked). */
  offsets?: number[];
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
  /** Already-tokenized prompt (the edge encodes and counts before it sends). */
  promptTokens: number[];
  params: SamplingParams;
  /** Adapter id resolved by the edge for the caller's tenant, if any. */
  adapter?: string;
  /** Aborting it cancels the generation: the stream stops early and its iterator throws the abort reason. */
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

export interface Inference {
  model(): Promise<ModelInfo>;
  /** Renders and tokenizes a prompt once per candidate tried, in one call. */
  encode(request: EncodeRequest): Promise<EncodedPrompt>;
  /**
   * Streams one generation: `prompt` (when asked), `text` events, then one `done`. Refusals (PlaneError:
   * invalid_request, context_length, overloaded, unavailable; adapter kinds not_found/busy) come before
   * any event, thrown by `generate` itself or by the first `next()`: callers treat both alike.
   */
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent>;
  close(): Promise<void>;
}
