import { afterEach, describe, expect, it } from "vitest";
import { rm3Weights, weightedMatchExpression } from "../../../services/retrieval/rm3.ts";
import { openTestKb, policyOf, utf8, type TestKb } from "./helpers.ts";

const close = (weights: Map<string, number>) => Object.fromEntries([...weights].map(([w, x]) => [w, +x.toFixed(10)]));

describe("RM3 expansion", () => {
  // P(d1) = 2/3, P(d2) = 1/3; P(cat|R) = 2/3·2/3 + 1/2·1/3 = 11/18, P(dog|R) = 1/3·2/3 = 4/18, P(fish|R) = 1/2·1/3 = 3/18.
  const feedback = [
    { text: "Cat cat dog", score: 2 },
    { text: "the cat, 42 fish", score: 1 },
  ];

  it("weighs feedback words by RM1 and interpolates the query (weights on a worked example)", () => {
    const weights = rm3Weights("the cat", feedback, { feedbackDocs: 10, feedbackTerms: 10, originalWeight: 0.5 });
    expect([...weights.keys()]).toEqual(["cat", "dog", "fish"]); // stop words and numbers never become terms
    expect(close(weights)).toEqual(close(new Map([["cat", 29 / 36], ["dog", 4 / 36], ["fish", 3 / 36]])));
    expect(weightedMatchExpression(weights)).toBe(`${Array(10).fill('"cat"').join(" OR ")} OR "dog" OR "fish"`);
  });

  it("keeps the heaviest feedback terms renormalised, from the top feedback documents only", () => {
    const two = rm3Weights("cat", feedback, { feedbackDocs: 10, feedbackTerms: 2, originalWeight: 0.5 });
    expect(close(two)).toEqual(close(new Map([["cat", 26 / 30], ["dog", 4 / 30]])));
    const first = rm3Weights("cat", feedback, { feedbackDocs: 1, feedbackTerms: 10, originalWeight: 0.8 });
    expect(close(first)).toEqual(close(new Map([["cat", 0.8 + 0.2 * (2 / 3)], ["dog", 0.2 / 3]])));
    // No usable feedback: the query alone.
    expect(close(rm3Weights("cat dog", [{ text: "of the 12", score: 3 }]))).toEqual({ cat: 0.5, dog: 0.5 });
  });

  describe("in search", () => {
    let t: TestKb;
    afterEach(async () => t.cleanup());

    it("finds a chunk that shares only feedback words with the query, and only when asked", async () => {
      t = await openTestKb();
      const texts = {
        panels: "Solar panels convert sunlight with photovoltaic cells.",
        cells: "Photovoltaic cells lose efficiency when hot photovoltaic modules age.",
        fruit: "Bananas are yellow and sweet.",
      };
      const ids: Record<string, string> = {};
      for (const [name, text] of Object.entries(texts)) ids[name] = (await t.kb.upload("acme", { bytes: utf8(text), title: name, format: "text" }, policyOf(t.store, "acme"))).document.id;
      const plain = await t.kb.search("acme", { query: "solar panels", mode: "bm25", k: 3 });
      expect(plain.map((h) => h.documentId)).toEqual([ids.panels]);
      const expanded = await t.kb.search("acme", { query: "solar panels", mode: "bm25", k: 3, expansion: "rm3" });
      expect(expanded.map((h) => h.documentId)).toEqual([ids.panels, ids.cells]);
      const hybrid = await t.kb.search("acme", { query: "solar panels", mode: "hybrid", k: 3, expansion: "rm3" });
      expect(hybrid[0].documentId).toBe(ids.panels);
      expect(hybrid.map((h) => h.documentId)).toContain(ids.cells);
      await expect(t.kb.search("acme", { query: "solar", expansion: "bogus" as never })).rejects.toThrow(/expansion must be one of none, rm3/);
      expect(await t.kb.search("globex", { query: "solar panels", mode: "bm25", expansion: "rm3" })).toEqual([]);
    });
  });
});
