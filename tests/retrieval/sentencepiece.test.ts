import { describe, expect, it } from "vitest";
import { UnigramTokenizer, type UnigramVocab } from "../../services/retrieval/embedders/sentencepiece.ts";

const RESERVED: UnigramVocab = [["<unk>", 0], ["<s>", 0], ["</s>", 0], ["x1", 0], ["x2", 0], ["x3", 0]];
const PIECES: UnigramVocab = [
  ["▁", -2], ["a", -3], ["b", -3], ["c", -3.5], ["ab", -4], ["bc", -4.5], ["abc", -9], ["▁a", -2.5], ["▁ab", -5], ["ca", -1],
];
const VOCAB = [...RESERVED, ...PIECES];

/** Reference: try every segmentation of the symbols into known pieces and keep the best total score. */
function bruteForce(text: string): number[] {
  const symbols = [..."▁" + text.replace(/ /g, "▁")];
  const ids = new Map(VOCAB.slice(RESERVED.length).map(([p], i) => [p, i + RESERVED.length]));
  let best: { score: number; ids: number[] } = { score: -Infinity, ids: [] };
  const walk = (at: number, score: number, acc: number[]) => {
    if (at === symbols.length) {
      if (score > best.score) best = { score, ids: acc };
      return;
    }
    for (let end = at + 1; end <= symbols.length; end++) {
      const id = ids.get(symbols.slice(at, end).join(""));
      if (id !== undefined) walk(end, score + VOCAB[id][1], [...acc, id]);
    }
  };
  walk(0, 0, []);
  return best.ids;
}

describe("UnigramTokenizer", () => {
  const tokenizer = new UnigramTokenizer(VOCAB);

  it("finds the highest-scoring segmentation (checked against exhaustive search)", () => {
    const alphabet = ["a", "b", "c", " "];
    for (let n = 1; n <= 7; n++) {
      for (let trial = 0; trial < 40; trial++) {
        const text = Array.from({ length: n }, (_, i) => alphabet[(i * 7 + trial * 13 + n) % alphabet.length]).join("");
        expect(tokenizer.encode(text), text).toEqual(bruteForce(text));
      }
    }
  });

  it("maps unknown characters to unk (0) and merges runs of them", () => {
    const ab = VOCAB.findIndex(([p]) => p === "▁ab");
    const c = VOCAB.findIndex(([p]) => p === "c");
    expect(tokenizer.encode("abzzc")).toEqual([ab, 0, c]);
  });

  it("never emits the reserved control ids for their literal text", () => {
    expect(tokenizer.encode("<s>").every((id) => id === 0 || id >= RESERVED.length)).toBe(true);
  });
});
