/**
 * Ports: the small interfaces through which the edge talks to the planes behind it.
 * Each has an in-process implementation (the embedded default) and may have an HTTP client
 * (the distributed deployment). The edge never knows which one it holds.
 */

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
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export type GenerateEvent =
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
  /** Renders messages with the model's chat template (or the documented fallback). */
  renderChat(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  tokenize(text: string, options?: { addSpecialTokens?: boolean }): number[];
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent>;
  close(): Promise<void>;
}
