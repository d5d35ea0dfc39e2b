/**
 * Prompt encoding as the engine does it (`Inference.encode`): chat messages through the model's chat
 * template, text through the tokenizer, the first candidate that fits the context. Pure and cheap, so a
 * caller that holds the tokenizer (the worker-thread engine's proxy, hosts/node/engine-thread.ts) encodes
 * on its own thread instead of waiting for the engine's loop.
 */
import type { EncodedPrompt, EncodeRequest, PromptSource } from "../../ports/inference.ts";
import type { ChatTemplate } from "../model/chat-template.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import { InvalidGenerateRequestError } from "./errors.ts";

export interface PromptEncoder {
  encode(request: EncodeRequest): EncodedPrompt;
  /** The tokenizer as `encode` uses it (special tokens added unless asked not to). */
  tokenize(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Token ids back to text, special tokens left out. */
  detokenize(tokens: number[]): string;
}

export function createPromptEncoder(tokenizer: TextTokenizer, chatTemplate: ChatTemplate, contextLength: number): PromptEncoder {
  const tokenize = (text: string, options?: { addSpecialTokens?: boolean }) => tokenizer.encode(text, { addSpecialTokens: options?.addSpecialTokens ?? true });
  const detokenize = (tokens: number[]) => (tokens.length > 0 ? tokenizer.decode(tokens, { skipSpecialTokens: true }) : "");
  const encodeSource = (source: PromptSource): { text: string; tokens: number[] } => {
    if ("tokens" in source) return { text: detokenize(source.tokens), tokens: source.tokens };
    if ("text" in source) return { text: source.text, tokens: tokenize(source.text) };
    const text = chatTemplate.render(source.messages, { addGenerationPrompt: true });
    return { text, tokens: tokenizer.encode(text, { addSpecialTokens: chatTemplate.encodeWithSpecialTokens }) };
  };
  const encode = ({ candidates, reserve = 1, offsets }: EncodeRequest): EncodedPrompt => {
    if (candidates.length === 0) throw new InvalidGenerateRequestError("encode needs at least one prompt candidate");
    for (let index = 0; ; index++) {
      const { text, tokens } = encodeSource(candidates[index]);
      const fits = tokens.length + reserve <= contextLength;
      if (!fits && index < candidates.length - 1) continue;
      return { index, fits, text, tokens, offsets: offsets ? textOffsets(tokens, text, detokenize) : undefined };
    }
  };
  return { encode, tokenize, detokenize };
}

/** Where each token starts in `text`: the length its predecessors decode to, at most the text's length. */
function textOffsets(tokens: number[], text: string, detokenize: (tokens: number[]) => string): number[] {
  return tokens.map((_, i) => (i === 0 ? 0 : Math.min(detokenize(tokens.slice(0, i)).length, text.length)));
}
