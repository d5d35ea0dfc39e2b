import { describe, expect, it } from "vitest";
import { createDetokenizer } from "../../../services/inference/detokenizer.ts";
import { createRandom } from "../../../services/inference/sampler.ts";
import { createTokenizer, loadTokenizer } from "../../../services/model/tokenizer.ts";
import { byteLevelTokenizerJson, findSharedModel } from "../../helpers/model-fixtures.ts";

const texts = [
  "Once upon a time, there was a little girl named Lily.",
  "Emoji 😀🎉👩‍👩‍👧 and CJK 世界你好, accents: crème brûlée, ñ, Ω.\nNew line.",
  " leading space and trailing ",
];

/** Whether the text ends inside a UTF-16 surrogate pair (half a character as JS sees it). */
function endsMidCharacter(text: string): boolean {
  const last = text.charCodeAt(text.length - 1);
  return last >= 0xd800 && last <= 0xdbff;
}

describe("detokenizer", () => {
  it("streams stories260k text that concatenates to the full decode, never half a character", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    for (const text of texts) {
      const ids = tokenizer.encode(text);
      const detokenizer = createDetokenizer(tokenizer, { atStartOfText: true });
      const pieces = ids.map((id) => detokenizer.push(id));
      pieces.push(detokenizer.flush());
      expect(pieces.join("")).toBe(tokenizer.decode(ids, { skipSpecialTokens: true }));
      expect(pieces.join("")).toBe(text);
      for (const piece of pieces) {
        expect(piece).not.toContain("\uFFFD");
        expect(endsMidCharacter(piece)).toBe(false);
      }
    }
  });

  it("holds byte-fallback tokens until the character is complete", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    const ids = tokenizer.encode("😀", { addSpecialTokens: false }); // "▁" then four byte tokens
    expect(ids.map((id) => tokenizer.tokenString(id))).toEqual(["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]);
    const detokenizer = createDetokenizer(tokenizer);
    expect(ids.map((id) => detokenizer.push(id))).toEqual([" ", "", "", "", "😀"]);
  });

  it("keeps the leading space of a continuation and can emit special tokens", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    const ids = tokenizer.encode("Once upon", { addSpecialTokens: false });
    const continuation = createDetokenizer(tokenizer);
    expect(ids.map((id) => continuation.push(id)).join("")).toBe(" Once upon");
    const withSpecials = createDetokenizer(tokenizer, { skipSpecialTokens: false, atStartOfText: true });
    const all = [1, ...ids, 2];
    expect(all.map((id) => withSpecials.push(id)).join("")).toBe(tokenizer.decode(all));
    expect(tokenizer.decode(all)).toBe("<s> Once upon</s>");
  });

  it("turns bytes into U+FFFD only once they are known to be invalid", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    const byte = (b: number) => 3 + b; // <0x00> is id 3
    const detokenizer = createDetokenizer(tokenizer);
    expect(detokenizer.push(byte(0xe4))).toBe("");
    expect(detokenizer.push(byte(0xb8))).toBe("");
    expect(detokenizer.push(byte(0x41))).toBe("\uFFFDA"); // the 3-byte sequence broke off
    expect(detokenizer.push(byte(0xf0))).toBe("");
    expect(detokenizer.flush()).toBe("\uFFFD"); // the stream ended mid-character
  });

  it("agrees with the full decode on random token sequences, invalid UTF-8 included", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    const random = createRandom(17);
    for (let trial = 0; trial < 300; trial++) {
      // Half the draws are byte-fallback tokens (ids 3..258), so broken UTF-8 is common.
      const ids = Array.from({ length: 1 + Math.floor(random() * 12) }, () =>
        random() < 0.5 ? 3 + Math.floor(random() * 256) : Math.floor(random() * tokenizer.vocabSize),
      );
      const detokenizer = createDetokenizer(tokenizer, { atStartOfText: true });
      const streamed = ids.map((id) => detokenizer.push(id)).join("") + detokenizer.flush();
      expect(streamed, `ids ${ids}`).toBe(tokenizer.decode(ids, { skipSpecialTokens: true }));
    }
  });

  it("streams byte-level BPE text exactly", () => {
    const tokenizer = createTokenizer(byteLevelTokenizerJson(), { eos_token: "<|im_end|>" });
    for (const text of texts) {
      const ids = [258, ...tokenizer.encode(text, { addSpecialTokens: false }), 259];
      const detokenizer = createDetokenizer(tokenizer, { atStartOfText: true });
      const pieces = ids.map((id) => detokenizer.push(id));
      expect(pieces.join("") + detokenizer.flush()).toBe(text);
      pieces.forEach((piece) => expect(endsMidCharacter(piece)).toBe(false));
    }
  });
});
