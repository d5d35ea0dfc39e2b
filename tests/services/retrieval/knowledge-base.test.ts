import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KnowledgeError } from "../../../services/retrieval/errors.ts";
import type { SearchFilter, SearchMode } from "../../../services/retrieval/types.ts";
import { addTenant, gatedEmbedder, hashingEmbedder, openTestKb, policyOf, utf8, type TestKb } from "./helpers.ts";

const MODES: SearchMode[] = ["dense", "bm25", "hybrid"];

let t: TestKb;
beforeEach(async () => {
  t = await openTestKb();
});
afterEach(async () => {
  await t.cleanup();
});

const upload = (tenant: string, text: string, extra: { title?: string; metadata?: Record<string, unknown>; fileName?: string } = {}) =>
  t.kb.upload(tenant, { bytes: utf8(text), fileName: extra.fileName ?? "doc.txt", title: extra.title, metadata: extra.metadata }, policyOf(t.store, tenant));

async function kindOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    if (err instanceof KnowledgeError) return `${err.kind}: ${err.message}`;
    throw err;
  }
}

describe("upload", () => {
  it("stores chunks and returns the ready document", async () => {
    const { document, created } = await upload("acme", "Rockets burn fuel.\n\nSatellites orbit the earth.", { title: "Space" });
    expect(created).toBe(true);
    expect(document).toMatchObject({ tenantId: "acme", title: "Space", format: "text", status: "ready", progress: 1, chunkCount: 1 });
    expect(await t.kb.indexedChunkIds("acme")).toHaveLength(1);
  });

  it("is idempotent for identical content", async () => {
    const first = await upload("acme", "Same words twice.");
    const second = await upload("acme", "Same words twice.", { title: "other title" });
    expect(second.created).toBe(false);
    expect(second.document.id).toBe(first.document.id);
    expect(await t.kb.list("acme")).toHaveLength(1);
    // Another tenant uploading the same bytes gets its own document.
    expect((await upload("globex", "Same words twice.")).created).toBe(true);
  });

  it("enforces the per-tenant size and count limits, naming the limit", async () => {
    addTenant(t.store, "tiny", { limits: { maxDocumentBytes: 10, maxDocuments: 1 } });
    expect(await kindOf(upload("tiny", "this is longer than ten bytes"))).toBe("too_large: document is 29 bytes; the limit maxDocumentBytes is 10");
    await upload("tiny", "short");
    expect(await kindOf(upload("tiny", "short2"))).toBe("too_large: tenant already has 1 documents; the limit maxDocuments is 1");
  });

  it("rejects unknown formats, empty and malformed documents without storing anything", async () => {
    expect(await kindOf(t.kb.upload("acme", { bytes: new Uint8Array([1, 2, 3]), fileName: "x.exe" }, policyOf(t.store, "acme")))).toMatch(/^unsupported_media_type: /);
    expect(await kindOf(t.kb.upload("acme", { bytes: new Uint8Array(), fileName: "x.txt" }, policyOf(t.store, "acme")))).toBe("invalid_request: document is empty");
    expect(await kindOf(t.kb.upload("acme", { bytes: utf8("{oops"), fileName: "x.jsonl" }, policyOf(t.store, "acme")))).toMatch(/^invalid_request: JSONL line 1/);
    expect(await t.kb.list("acme")).toEqual([]);
  });

  it("accepts a document without text, with a warning", async () => {
    const { document } = await t.kb.upload("acme", { bytes: utf8("<html><script>only()</script></html>"), fileName: "empty.html" }, policyOf(t.store, "acme"));
    expect(document).toMatchObject({ status: "ready", chunkCount: 0, warning: "the document holds no text to index" });
  });

  it("ingests large documents in the background with progress", async () => {
    const text = Array.from({ length: 300 }, (_, i) => `Paragraph ${i} mentions item ${i}.`).join("\n\n");
    // Below the default inlineBytes the upload returns once ingested; inlineBytes 0 sends everything to the background.
    expect((await t.kb.upload("acme", { bytes: utf8(text), fileName: "big.md" }, policyOf(t.store, "acme"))).document.status).toBe("ready");
    const gate = gatedEmbedder();
    const bg = await openTestKb({ inlineBytes: 0, embedBatchSize: 4, embedder: gate.embedder });
    try {
      const first = await bg.kb.upload("acme", { bytes: utf8(text), fileName: "big.md" }, policyOf(bg.store, "acme"));
      expect(first.document.status).toBe("queued");
      const progress = () => bg.kb.get("acme", first.document.id);
      await gate.arrived();
      expect(await progress()).toMatchObject({ status: "processing", progress: 0 });
      gate.release();
      await gate.arrived(); // four chunks embedded, the next batch waiting
      const midway = await progress();
      expect(midway.status).toBe("processing");
      expect(midway.progress).toBeGreaterThan(0);
      expect(midway.progress).toBeLessThan(1);
      gate.open();
      await bg.kb.idle();
      const done = await progress();
      expect(done).toMatchObject({ status: "ready", progress: 1 });
      expect(done.chunkCount).toBeGreaterThan(5);
      expect(midway.progress).toBeCloseTo((0.99 * 4) / done.chunkCount, 6);
    } finally {
      gate.open();
      await bg.cleanup();
    }
  });

  it("chunks with the tenant's chunkSize setting", async () => {
    addTenant(t.store, "fine", { settings: { chunkSize: 32, chunkOverlap: 0 } });
    const text = Array.from({ length: 40 }, (_, i) => `Sentence ${i} is here.`).join(" ");
    const coarse = await upload("acme", text);
    const fine = await upload("fine", text);
    expect(coarse.document.chunkCount).toBe(1);
    expect(fine.document.chunkCount).toBeGreaterThan(4);
  });
});

describe("chunk sizing", () => {
  it("cuts chunks to the embedder's window with the embedder's own token count", async () => {
    const base = hashingEmbedder();
    const small = await openTestKb({ embedder: { ...base, embed: base.embed.bind(base), maxTokens: 20, countTokens: (s: string) => 2 * s.split(/\s+/).length } });
    try {
      const text = Array.from({ length: 30 }, (_, i) => `Sentence ${i} here.`).join(" ");
      await small.kb.upload("acme", { bytes: utf8(text), fileName: "a.txt" }, policyOf(small.store, "acme"));
      const rows = small.store.sqlite.prepare("SELECT token_count FROM chunks ORDER BY position").pluck().all() as number[];
      expect(rows.length).toBeGreaterThan(5);
      expect(Math.max(...rows)).toBeLessThanOrEqual(20);
    } finally {
      await small.cleanup();
    }
  });
});

describe("search", () => {
  beforeEach(async () => {
    await upload("acme", "# Billing\n\nInvoices are sent monthly by email.\n\n# Security\n\nPasswords are reset from the login page.", { fileName: "a.md", title: "Handbook", metadata: { team: "ops", public: true } });
    await upload("acme", "Cats sleep most of the day and hunt at night.", { title: "Cats", metadata: { team: "zoo", public: false } });
    await upload("globex", "Passwords at globex are reset by the secret vault team.", { title: "Globex secrets" });
  });

  it.each(MODES)("%s mode finds the relevant chunk with citation fields", async (mode) => {
    const [hit] = await t.kb.search("acme", { query: "how are passwords reset", k: 3, mode });
    expect(hit).toMatchObject({ title: "Handbook", text: "Passwords are reset from the login page.", headingPath: ["Security"], position: 1 });
    expect(hit.score).toBeGreaterThan(0);
    const source = "# Billing\n\nInvoices are sent monthly by email.\n\n# Security\n\nPasswords are reset from the login page.";
    expect(source.slice(hit.startOffset, hit.endOffset)).toBe(hit.text);
  });

  it.each(MODES)("%s mode never returns another tenant's chunks, whatever the filter", async (mode) => {
    const globexDoc = (await t.kb.list("globex"))[0].id;
    // The query matches Handbook in every mode and Cats by vector only; Globex's document matches best of all.
    const everything = mode === "bm25" ? ["Handbook"] : ["Cats", "Handbook", "Handbook"];
    const cases: Array<[SearchFilter | undefined, string[]]> = [
      [undefined, everything],
      [{ documentIds: [globexDoc] }, []],
      [{ metadata: { team: "ops" } }, everything.filter((title) => title === "Handbook")],
      [{ documentIds: [] }, []],
      [{ metadata: {} }, everything],
    ];
    for (const [filter, titles] of cases) {
      const hits = await t.kb.search("acme", { query: "passwords reset secret vault globex", k: 10, mode, filter });
      expect(hits.map((h) => h.title).sort(), JSON.stringify(filter)).toEqual(titles);
    }
    const own = await t.kb.search("globex", { query: "passwords reset login page", k: 10, mode });
    expect(own.map((h) => h.title)).toEqual(["Globex secrets"]);
  });

  it.each(MODES)("%s mode honours document and metadata filters", async (mode) => {
    const cats = (await t.kb.list("acme")).find((d) => d.title === "Cats")!.id;
    const byDoc = await t.kb.search("acme", { query: "passwords cats", k: 10, mode, filter: { documentIds: [cats] } });
    expect(byDoc.map((h) => h.documentId)).toEqual([cats]);
    const byMeta = await t.kb.search("acme", { query: "passwords cats night", k: 10, mode, filter: { metadata: { public: false } } });
    expect(byMeta.map((h) => h.title)).toEqual(["Cats"]);
    const none = await t.kb.search("acme", { query: "passwords cats", k: 10, mode, filter: { metadata: { team: "nobody" } } });
    expect(none).toEqual([]);
  });

  it("rejects bad queries", async () => {
    expect(await kindOf(t.kb.search("acme", { query: "  " }))).toBe("invalid_request: query must be a non-empty string");
    expect(await kindOf(t.kb.search("acme", { query: "x", k: 0 }))).toBe("invalid_request: k must be an integer from 1 to 100");
    expect(await kindOf(t.kb.search("acme", { query: "x", mode: "fuzzy" as SearchMode }))).toBe("invalid_request: mode must be one of dense, bm25, hybrid");
    expect(await kindOf(t.kb.search("acme", { query: "x", filter: { metadata: { "a'b": 1 } } }))).toMatch(/^invalid_request: metadata filter key/);
  });

  it("treats FTS syntax in queries as plain words", async () => {
    const hits = await t.kb.search("acme", { query: 'passwords" OR NEAR(* -', mode: "bm25" });
    expect(hits[0].title).toBe("Handbook");
  });

  it("delete removes the document's chunks from every index", async () => {
    const handbook = (await t.kb.list("acme")).find((d) => d.title === "Handbook")!;
    const cats = (await t.kb.list("acme")).find((d) => d.title === "Cats")!;
    const before = await t.kb.indexedChunkIds("acme");
    for (const mode of MODES) {
      const hits = await t.kb.search("acme", { query: "passwords invoices", k: 10, mode });
      expect(hits.map((h) => h.documentId)).toContain(handbook.id);
    }
    await t.kb.delete("acme", handbook.id);
    for (const mode of MODES) {
      const hits = await t.kb.search("acme", { query: "passwords invoices", k: 10, mode });
      expect(hits.map((h) => h.documentId)).toEqual(mode === "bm25" ? [] : [cats.id]); // what is left: Cats, by vector only
    }
    expect((await t.kb.indexedChunkIds("acme")).length).toBe(before.length - 2);
    expect(t.store.sqlite.prepare("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'invoices'").pluck().get()).toBe(0);
    expect(await kindOf(t.kb.delete("acme", handbook.id))).toMatch(/^not_found/);
    expect(await kindOf(t.kb.delete("globex", cats.id))).toMatch(/^not_found/);
  });

  it("survives a restart: documents, index and FTS", async () => {
    const ids = await t.kb.indexedChunkIds("acme");
    const kb = await t.reopen();
    expect(existsSync(join(t.dataDir, "indexes", "acme.hnsw"))).toBe(true);
    expect(await kb.indexedChunkIds("acme")).toEqual(ids);
    for (const mode of MODES) {
      const [hit] = await kb.search("acme", { query: "monthly invoices", k: 1, mode });
      expect(hit.text).toBe("Invoices are sent monthly by email.");
    }
  });

  it("reindex rebuilds the index with a new embedder", async () => {
    const other = hashingEmbedder(32);
    const kb = await t.reopen({ embedder: other });
    // The stored index was built by another model: it is rebuilt from the chunks at load.
    expect(await kb.indexedChunkIds("acme")).toEqual(t.store.sqlite.prepare("SELECT id FROM chunks WHERE tenant_id='acme' ORDER BY id").pluck().all());
    expect(await kb.reindex("acme")).toBe(3);
    const [hit] = await kb.search("acme", { query: "cats hunt at night", k: 1, mode: "dense" });
    expect(hit.title).toBe("Cats");
  });
});
