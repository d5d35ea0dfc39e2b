/**
 * Incremental detokenizer: turns a stream of token ids into text pieces on token bytes, so a piece
 * never ends in half a UTF-8 character. Incomplete sequences wait for the next token; bytes that
 * can no longer form a character become U+FFFD (WHATWG streaming UTF-8 decoding).
 */
import type { TextTokenizer } from "../model/tokenizer.ts";

export interface Detokenizer {
  /** Adds one token; returns the text it completed (often "", e.g. mid-character). */
  push(tokenId: number): string;
  /** Ends the stream; bytes of an unfinished character come out as U+FFFD. */
  flush(): string;
}

export interface DetokenizerOptions {
  /** Drop special tokens (BOS, EOS, ChatML markers) from the text. Default true. */
  skipSpecialTokens?: boolean;
  /**
   * The stream is the beginning of the text (not a continuation of a prompt): apply the
   * tokenizer's leading-space convention, i.e. drop SentencePiece's dummy-prefix space, as a
   * full decode would. Default false, since generated text continues a prompt.
   */
  atStartOfText?: boolean;
}

const SPACE = 0x20;

export function createDetokenizer(
  tokenizer: Pick<TextTokenizer, "tokenBytes" | "specialTokenIds" | "stripsLeadingSpace">,
  options: DetokenizerOptions = {},
): Detokenizer {
  const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  const skipSpecial = options.skipSpecialTokens ?? true;
  let stripPending = (options.atStartOfText ?? false) && tokenizer.stripsLeadingSpace;
  return {
    push(tokenId) {
      if (skipSpecial && tokenizer.specialTokenIds.has(tokenId)) return "";
      let bytes = tokenizer.tokenBytes(tokenId);
      if (stripPending && bytes.byteLength > 0) {
        if (bytes[0] === SPACE) bytes = bytes.subarray(1);
        stripPending = false;
      }
      return decoder.decode(bytes, { stream: true });
    },
    flush: () => decoder.decode(),
  };
}
