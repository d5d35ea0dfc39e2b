import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { UnigramTokenizer, type UnigramVocab } from "../../../services/retrieval/embedders/sentencepiece.ts";
import { useLiteModelDir } from "../../../services/retrieval/embedders/use-lite.ts";
import { createRandom } from "../../../services/inference/sampler.ts";

const RESERVED: UnigramVocab = [["<unk>", 0], ["<s>", 0], ["</s>", 0], ["x1", 0], ["x2", 0], ["x3", 0]];
const PIECES: UnigramVocab = [
  ["▁", -2], ["a", -3], ["b", -3], ["c", -3.5], ["ab", -4], ["bc", -4.5], ["abc", -9], ["▁a", -2.5], ["▁ab", -5], ["ca", -1],
];
const VOCAB = [...RESERVED, ...PIECES];

/** Reference: try every segmentation of the symbols into known pieces and keep the best total score. */
function bruteForce(text: string): { score: number; ids: number[] } {
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
  return best;
}

/** The text a segmentation spells (with "▁" for spaces) and its total score. */
function spelled(ids: number[]): { text: string; score: number } {
  return { text: ids.map((id) => VOCAB[id]![0]).join(""), score: ids.reduce((sum, id) => sum + VOCAB[id]![1], 0) };
}


describe("UnigramTokenizer", () => {
  const tokenizer = new UnigramTokenizer(VOCAB);

  it("finds the highest-scoring segmentation (checked against exhaustive search)", () => {
    const alphabet = ["a", "b", "c", " "];
    const random = createRandom(20261201);
    const seen = new Set<string>();
    for (let n = 1; n <= 7; n++) {
      for (let trial = 0; trial < 40; trial++) {
        const text = Array.from({ length: n }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
        seen.add(text);
        // Equal-scoring segmentations exist in this toy vocabulary ("b|ab|c" and "b|a|bc"); ties are
        // broken as the original does, which the pinned ids below check on the real vocabulary.
        const best = bruteForce(text);
        const ours = spelled(tokenizer.encode(text));
        expect(ours.text, text).toBe("▁" + text.replace(/ /g, "▁"));
        expect(ours.score, text).toBeCloseTo(best.score, 9);
      }
    }
    expect(seen.size).toBeGreaterThan(200); // of 280 trials: the texts really vary
  });

  it("breaks ties as the original TF.js tokenizer does (its output for this vocabulary, run once)", () => {
    expect(tokenizer.encode("babc")).toEqual([6, 8, 10, 9]); // ▁ b ab c, not ▁ b a bc (same score)
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

describe("UnigramTokenizer on USE Lite's vocabulary", () => {
  // Ids from the original TF.js tokenizer (tests/fixtures/use-tokenizer/make.cjs).
  const fixture = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/use-tokenizer/ids.json"), "utf8")) as {
    pinned: Array<{ text: string; ids: number[] }>;
  };
  const tokenizer = new UnigramTokenizer(JSON.parse(readFileSync(join(useLiteModelDir(), "vocab.json"), "utf8")) as UnigramVocab);

  it.each(fixture.pinned.map((p) => [p.text, p.ids] as const))("gives the original tokenizer's ids for %j", (text, ids) => {
    expect(ids.length).toBeGreaterThan(0);
    expect(tokenizer.encode(text)).toEqual(ids);
  });
});
