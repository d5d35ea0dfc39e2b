import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestKb, policyOf, utf8, type TestKb } from "./helpers.ts";

let t: TestKb;
beforeEach(async () => {
  t = await openTestKb();
  // A long manual of many chunks about pumps, and two short notes that also mention pumps.
  t.store.sqlite.prepare("UPDATE tenants SET settings = ? WHERE id = 'acme'").run(JSON.stringify({ chunkSize: 16, chunkOverlap: 0 }));
  const manual = Array.from({ length: 12 }, (_, i) => `Pump impeller note ${i}: the pump impeller spins inside the pump casing.`).join("\n\n");
  await t.kb.upload("acme", { bytes: utf8(manual), fileName: "manual.txt", title: "Pump manual" }, policyOf(t.store, "acme"));
  await t.kb.upload("acme", { bytes: utf8("Check the pump seal for leaks weekly."), fileName: "seal.txt", title: "Seal checks" }, policyOf(t.store, "acme"));
  await t.kb.upload("acme", { bytes: utf8("Pump bearings need grease twice a year."), fileName: "bearings.txt", title: "Bearings" }, policyOf(t.store, "acme"));
});
afterEach(() => t.cleanup());

const titles = (hits: Array<{ title: string }>) => hits.map((h) => h.title);

describe("search options", () => {
  it("group_by document returns distinct documents, each at its best chunk with that chunk's offsets", async () => {
    const chunks = await t.kb.search("acme", { query: "pump impeller", k: 5, mode: "bm25" });
    expect(titles(chunks)).toEqual(Array(5).fill("Pump manual"));
    const docs = await t.kb.search("acme", { query: "pump impeller", k: 5, mode: "bm25", groupBy: "document" });
    expect(titles(docs)).toHaveLength(3);
    expect(new Set(titles(docs)).size).toBe(3);
    expect(docs[0]).toMatchObject({ title: "Pump manual", chunkId: chunks[0].chunkId, startOffset: chunks[0].startOffset, endOffset: chunks[0].endOffset });
    for (const mode of ["dense", "hybrid"] as const) {
      const grouped = await t.kb.search("acme", { query: "pump impeller", k: 5, mode, groupBy: "document" });
      expect(new Set(titles(grouped)).size).toBe(grouped.length);
    }
  });

  it("max_chunks_per_document leaves room for other documents, and refills when they run out", async () => {
    const capped = await t.kb.search("acme", { query: "pump impeller", k: 4, mode: "bm25", maxChunksPerDocument: 2 });
    expect(titles(capped).filter((x) => x === "Pump manual")).toHaveLength(2);
    expect(titles(capped).sort()).toEqual(["Bearings", "Pump manual", "Pump manual", "Seal checks"]);
    const refilled = await t.kb.search("acme", { query: "pump impeller", k: 6, mode: "bm25", maxChunksPerDocument: 1 });
    expect(refilled).toHaveLength(6);
    // Still in rank order.
    expect(refilled.map((h) => h.score)).toEqual([...refilled.map((h) => h.score)].sort((a, b) => b - a));
  });

  it("chooses the fusion and weights per request; all weight on one side gives that side's order", async () => {
    const query = "grease for the impeller bearings";
    const bm25 = await t.kb.search("acme", { query, k: 3, mode: "bm25" });
    const onlyBm25 = await t.kb.search("acme", { query, k: 3, mode: "hybrid", fusion: "weighted", weights: { dense: 0, bm25: 1 } });
    expect(onlyBm25.map((h) => h.chunkId)).toEqual(bm25.map((h) => h.chunkId));
    // Hybrid reads 100 candidates a side: compare with dense search at that depth.
    const dense = (await t.kb.search("acme", { query, k: 100, mode: "dense" })).slice(0, 3);
    const onlyDense = await t.kb.search("acme", { query, k: 3, mode: "hybrid", fusion: "rrf", weights: { dense: 1, bm25: 0 } });
    expect(onlyDense.map((h) => h.chunkId)).toEqual(dense.map((h) => h.chunkId));
  });

  it("a chunk only one side finds can still reach the top of a hybrid search", async () => {
    // "leaks" is only in the seal note: BM25 finds it, the hashing embedder's vector barely does.
    const hits = await t.kb.search("acme", { query: "leaks", k: 1, mode: "hybrid" });
    expect(titles(hits)).toEqual(["Seal checks"]);
  });

  it("answers hostile query text in every mode instead of failing", async () => {
    for (const query of ['"pump', "NEAR(pump, 2) AND NOT", "pump* ^title:seal", "((", "🚀", "the of and"]) {
      for (const mode of ["dense", "bm25", "hybrid"] as const) await expect(t.kb.search("acme", { query, k: 3, mode })).resolves.toBeInstanceOf(Array);
    }
    expect(titles(await t.kb.search("acme", { query: '"seal" OR (leaks', k: 1, mode: "bm25" }))).toEqual(["Seal checks"]);
    expect(await t.kb.search("acme", { query: "🚀", k: 3, mode: "bm25" })).toEqual([]);
  });

  it("refuses bad fusion options with invalid_request", async () => {
    const bad = [
      [{ fusion: "max" }, /fusion/],
      [{ weights: { dense: -1 } }, /weights/],
      [{ weights: { dense: 0, bm25: 0 } }, /weights/],
      [{ weights: { bm25: Number.NaN } }, /weights/],
      [{ groupBy: "page" }, /group_by/],
      [{ maxChunksPerDocument: 0 }, /max_chunks_per_document/],
    ] as const;
    for (const [options, message] of bad) {
      await expect(t.kb.search("acme", { query: "pump", ...(options as object) })).rejects.toMatchObject({ kind: "invalid_request", message: expect.stringMatching(message) });
    }
  });
});
