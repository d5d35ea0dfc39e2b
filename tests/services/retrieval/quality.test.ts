import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUseLiteEmbedder } from "../../../services/retrieval/embedders/use-lite.ts";
import type { Embedder, SearchRequest } from "../../../services/retrieval/types.ts";
import { openTestKb, policyOf, type TestKb } from "./helpers.ts";

const FIXTURES = join(import.meta.dirname, "fixtures");
const questions = JSON.parse(readFileSync(join(FIXTURES, "support-questions.json"), "utf8")) as Array<{ question: string; gold: string }>;

describe("retrieval quality on the labelled support corpus (USE Lite)", () => {
  let t: TestKb;
  let embedder: Embedder;
  beforeAll(async () => {
    embedder = await createUseLiteEmbedder();
    t = await openTestKb({ embedder });
    // One JSONL record per passage: each becomes its own chunk, its id the heading path.
    const bytes = readFileSync(join(FIXTURES, "support-corpus.jsonl"));
    const { document } = await t.kb.upload("acme", { bytes, fileName: "support-corpus.jsonl" }, policyOf(t.store, "acme"));
    expect(document.chunkCount).toBe(30);
  });
  afterAll(async () => {
    await t.cleanup();
    await embedder.close?.();
  });

  /** Recall@5 and mean reciprocal rank of the gold passage (MRR@10). */
  async function quality(request: Omit<SearchRequest, "query" | "k">): Promise<{ recall5: number; mrr: number }> {
    let found = 0;
    let rr = 0;
    for (const { question, gold } of questions) {
      const hits = await t.kb.search("acme", { ...request, query: question, k: 10 });
      const rank = hits.findIndex((h) => h.headingPath[0] === gold);
      if (rank >= 0 && rank < 5) found++;
      if (rank >= 0) rr += 1 / (rank + 1);
    }
    return { recall5: found / questions.length, mrr: rr / questions.length };
  }

  it.each([
    ["the default fusion", {}],
    ["weighted fusion", { fusion: "weighted" }],
    ["reciprocal-rank fusion", { fusion: "rrf" }],
  ] as const)("hybrid with %s ranks at least as well as dense alone and BM25 alone", async (_name, fusion) => {
    const [dense, bm25, hybrid] = [await quality({ mode: "dense" }), await quality({ mode: "bm25" }), await quality({ mode: "hybrid", ...fusion })];
    expect(hybrid.recall5).toBeGreaterThanOrEqual(Math.max(dense.recall5, bm25.recall5));
    expect(hybrid.mrr).toBeGreaterThanOrEqual(Math.max(dense.mrr, bm25.mrr));
    // The corpus is easy enough that a working pipeline finds nearly everything.
    expect(hybrid.recall5).toBeGreaterThanOrEqual(0.9);
  });
});
