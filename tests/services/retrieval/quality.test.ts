import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUseLiteEmbedder } from "../../../services/retrieval/embedders/use-lite.ts";
import type { Embedder, SearchMode } from "../../../services/retrieval/types.ts";
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

  async function recallAt5(mode: SearchMode): Promise<number> {
    let found = 0;
    for (const { question, gold } of questions) {
      const hits = await t.kb.search("acme", { query: question, k: 5, mode });
      if (hits.some((h) => h.headingPath[0] === gold)) found++;
    }
    return found / questions.length;
  }

  it("hybrid recall@5 is at least that of dense alone and of BM25 alone", async () => {
    const [dense, bm25, hybrid] = [await recallAt5("dense"), await recallAt5("bm25"), await recallAt5("hybrid")];
    expect(hybrid).toBeGreaterThanOrEqual(dense);
    expect(hybrid).toBeGreaterThanOrEqual(bm25);
    // The corpus is easy enough that a working pipeline finds nearly everything.
    expect(hybrid).toBeGreaterThanOrEqual(0.9);
  });
});
