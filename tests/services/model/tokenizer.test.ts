import { describe, expect, it } from "vitest";
import { createTokenizer, loadTokenizer } from "../../../services/model/tokenizer.ts";
import { byteLevelTokenizerJson, findSharedModel } from "../../helpers/model-fixtures.ts";

const texts = ["Once upon a time", "héllo wörld, ça va?", "emoji 😀🎉 and CJK 世界 and\nnew lines\ttabs", "  two  spaces "];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

describe("tokenizer", () => {
  it("encodes stories260k like SentencePiece with BOS", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    expect(tokenizer.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    expect(tokenizer.encode("Once upon a time", { addSpecialTokens: false })).toEqual([403, 407, 261, 378]);
    expect(tokenizer.vocabSize).toBe(512);
    expect(tokenizer.bosTokenId).toBe(1);
    expect(tokenizer.eosTokenIds).toEqual([2]);
    expect([...tokenizer.specialTokenIds].sort()).toEqual([0, 1, 2]);
    expect(tokenizer.stripsLeadingSpace).toBe(true);
    expect(tokenizer.tokenString(403)).toBe("▁Once");
  });

  it("round-trips Unicode text, and token bytes spell the decoded text", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("stories260k"));
    for (const text of texts) {
      const ids = tokenizer.encode(text);
      expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe(text);
      const bytes = concat(ids.filter((id) => !tokenizer.specialTokenIds.has(id)).map((id) => tokenizer.tokenBytes(id)));
      // SentencePiece's dummy prefix: the bytes carry one extra leading space that decoding strips.
      expect(new TextDecoder().decode(bytes)).toBe(` ${text}`);
    }
    expect(Array.from(tokenizer.tokenBytes(13))).toEqual([0x0a]);
    expect(Array.from(tokenizer.tokenBytes(3 + 0xf0))).toEqual([0xf0]);
    expect(new TextDecoder().decode(tokenizer.tokenBytes(1))).toBe("<s>");
    expect(() => tokenizer.tokenBytes(600)).toThrow(/outside the vocabulary/);
  });

  it("maps byte-level BPE tokens back to their bytes", () => {
    const tokenizer = createTokenizer(byteLevelTokenizerJson(), { eos_token: "<|im_end|>", bos_token: null });
    expect(tokenizer.stripsLeadingSpace).toBe(false);
    expect(tokenizer.eosTokenIds).toEqual([259]);
    expect(tokenizer.bosTokenId).toBeUndefined();
    expect(tokenizer.vocabSize).toBe(260);
    for (const text of [...texts, "say hi"]) {
      const ids = tokenizer.encode(text, { addSpecialTokens: false });
      expect(tokenizer.decode(ids)).toBe(text);
      expect(new TextDecoder().decode(concat(ids.map((id) => tokenizer.tokenBytes(id))))).toBe(text);
    }
    expect(tokenizer.encode("say hi", { addSpecialTokens: false }).at(-1)).toBe(257);
    expect(new TextDecoder().decode(tokenizer.tokenBytes(257))).toBe(" hi");
    expect(tokenizer.encode("<|im_start|>hi")).toEqual([258, 104, 105]);
    expect(new TextDecoder().decode(tokenizer.tokenBytes(258))).toBe("<|im_start|>");
  });

  it("loads the WordPiece tokenizer of the embedding models", async () => {
    const tokenizer = await loadTokenizer(findSharedModel("minilm-tokenizer"));
    // bert-base-uncased ids: [CLS] hello , world ! cafe [SEP] (lower-cased, accents stripped)
    expect(tokenizer.encode("Hello, World! café")).toEqual([101, 7592, 1010, 2088, 999, 7668, 102]);
    expect(tokenizer.vocabSize).toBe(30522);
    expect(tokenizer.specialTokenIds.has(101)).toBe(true);
  });

  it("says which folder lacks a tokenizer", async () => {
    await expect(loadTokenizer("/nonexistent-model")).rejects.toThrow(/no tokenizer.json in model folder \/nonexistent-model/);
  });
});
