/**
 * `Inference.encode` without an engine: the chat template rendered and tokenized, the first candidate
 * that leaves `reserve` tokens of the context. The engine serves it, and so does a process that only
 * counts tokens (the control node validating training files) by loading the tokenizer alone.
 */
import { basename } from "node:path";
import type { EncodedPrompt, EncodeRequest, Inference, ModelInfo, PromptSource } from "../../ports/inference.ts";
import { loadChatTemplate, type ChatTemplate } from "../model/chat-template.ts";
import { loadDecoderConfig } from "../model/config.ts";
import { loadTokenizer, type TextTokenizer } from "../model/tokenizer.ts";
import { InvalidGenerateRequestError } from "./errors.ts";

export interface PromptEncoder extends Pick<Inference, "model" | "encode"> {
  tokenize(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Token ids back to text, special tokens left out. */
  detokenize(tokens: number[]): string;
}

export function promptEncoder(tokenizer: TextTokenizer, chatTemplate: ChatTemplate, info: ModelInfo): PromptEncoder {
  const tokenize = (text: string, options?: { addSpecialTokens?: boolean }) => tokenizer.encode(text, { addSpecialTokens: options?.addSpecialTokens ?? true });
  const detokenize = (tokens: number[]) => (tokens.length > 0 ? tokenizer.decode(tokens, { skipSpecialTokens: true }) : "");
  const encodeSource = (source: PromptSource): { text: string; tokens: number[] } => {
    if ("tokens" in source) return { text: detokenize(source.tokens), tokens: source.tokens };
    if ("text" in source) return { text: source.text, tokens: tokenize(source.text) };
    const text = chatTemplate.render(source.messages, { addGenerationPrompt: true });
    return { text, tokens: tokenizer.encode(text, { addSpecialTokens: chatTemplate.encodeWithSpecialTokens }) };
  };
  const encode = async ({ candidates, reserve = 1, offsets }: EncodeRequest): Promise<EncodedPrompt> => {
    if (candidates.length === 0) throw new InvalidGenerateRequestError("encode needs at least one prompt candidate");
    for (let index = 0; ; index++) {
      const { text, tokens } = encodeSource(candidates[index]);
      const fits = tokens.length + reserve <= info.contextLength;
      if (!fits && index < candidates.length - 1) continue;
      return { index, fits, text, tokens, offsets: offsets ? textOffsets(tokens, text, detokenize) : undefined };
    }
  };
  return { model: async () => info, encode, tokenize, detokenize };
}

/** The model folder's tokenizer and chat template alone (no weights, no graphs). */
export async function loadPromptEncoder(modelDir: string, modelId = basename(modelDir)): Promise<PromptEncoder> {
  const [config, tokenizer, chatTemplate] = await Promise.all([loadDecoderConfig(modelDir), loadTokenizer(modelDir), loadChatTemplate(modelDir)]);
  return promptEncoder(tokenizer, chatTemplate, { id: modelId, contextLength: config.maxPositionEmbeddings, vocabSize: config.vocabSize });
}

/** Where each token starts in `text`: the length its predecessors decode to, at most the text's length. */
function textOffsets(tokens: number[], text: string, detokenize: (tokens: number[]) => string): number[] {
  return tokens.map((_, i) => (i === 0 ? 0 : Math.min(detokenize(tokens.slice(0, i)).length, text.length)));
}
