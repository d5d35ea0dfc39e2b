import { spawn } from "node:child_process";
import { cpSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, openDatabase } from "../../../services/store/db.ts";
import { documents } from "../../../services/store/schema.ts";
import type { KnowledgeBase } from "../../../services/retrieval/knowledge-base.ts";
import { openTestKb, policyOf, utf8, type TestKb } from "./helpers.ts";

let t: TestKb | undefined;
afterEach(async () => {
  await t?.cleanup();
  t = undefined;
});

function chunkIds(ctx: TestKb, tenant: string): number[] {
  return ctx.store.sqlite.prepare("SELECT id FROM chunks WHERE tenant_id = ? ORDER BY id").pluck().all(tenant) as number[];
}

async function expectConsistent(ctx: TestKb, kb: KnowledgeBase, tenant: string) {
  expect(await kb.indexedChunkIds(tenant)).toEqual(chunkIds(ctx, tenant));
  // FTS5 agrees with its content table.
  expect(() => ctx.store.sqlite.exec("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')")).not.toThrow();
  const fts = ctx.store.sqlite.prepare("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'paragraph OR document OR topic' ").pluck().get();
  expect(fts).toBe(ctx.store.sqlite.prepare("SELECT count(*) FROM chunks WHERE text LIKE '%paragraph%'").pluck().get());
}

describe("persistence", () => {
  it("reconciles an index file that is behind and ahead of the database", async () => {
    t = await openTestKb();
    const a = await t.kb.upload("acme", { bytes: utf8("Alpha apples are crunchy."), fileName: "a.txt" }, policyOf(t.store, "acme"));
    const snapshot = join(t.dataDir, "snapshot.hnsw");
    copyFileSync(join(t.dataDir, "indexes", "acme.hnsw"), snapshot);
    copyFileSync(join(t.dataDir, "indexes", "acme.hnsw.json"), `${snapshot}.json`);
    await t.kb.upload("acme", { bytes: utf8("Bravo bananas are yellow."), fileName: "b.txt" }, policyOf(t.store, "acme"));
    await t.kb.delete("acme", a.document.id);
    await t.kb.close();
    // As if the process died before saving: the old index still holds A's vector and lacks B's.
    copyFileSync(snapshot, join(t.dataDir, "indexes", "acme.hnsw"));
    copyFileSync(`${snapshot}.json`, join(t.dataDir, "indexes", "acme.hnsw.json"));
    const kb = await t.reopen();
    expect(await kb.indexedChunkIds("acme")).toEqual(chunkIds(t, "acme"));
    const hits = await kb.search("acme", { query: "alpha apples bravo bananas", k: 5, mode: "dense" });
    expect(hits.map((h) => h.text)).toEqual(["Bravo bananas are yellow."]);
  });

  it("close stops between batches; unfinished documents resume at the next start", async () => {
    t = await openTestKb({ inlineBytes: 0, embedBatchSize: 2 });
    t.store.sqlite.prepare("UPDATE tenants SET settings = ?").run(JSON.stringify({ chunkSize: 32, chunkOverlap: 0 }));
    const text = Array.from({ length: 60 }, (_, i) => `Line ${i} of a long manual about pumps and valves.`).join("\n\n");
    const { document } = await t.kb.upload("acme", { bytes: utf8(text), fileName: "manual.txt" }, policyOf(t.store, "acme"));
    await t.kb.close();
    expect(["queued", "processing"]).toContain((await t.kb.get("acme", document.id)).status);
    expect(chunkIds(t, "acme")).toEqual([]);
    // The resumed ingestion chunks as the upload asked, whatever the settings say now.
    t.store.sqlite.prepare("UPDATE tenants SET settings = ?").run(JSON.stringify({ chunkSize: 4096 }));
    const kb = await t.reopen();
    await kb.idle();
    expect(await kb.get("acme", document.id)).toMatchObject({ status: "ready", progress: 1 });
    expect(await kb.indexedChunkIds("acme")).toEqual(chunkIds(t, "acme"));
    expect(chunkIds(t, "acme").length).toBeGreaterThan(10);
  });

  it("rebuilds an unreadable index file from the stored chunks", async () => {
    t = await openTestKb();
    await t.kb.upload("acme", { bytes: utf8("Charlie cherries are red."), fileName: "c.txt" }, policyOf(t.store, "acme"));
    await t.kb.close();
    writeFileSync(join(t.dataDir, "indexes", "acme.hnsw"), "garbage, not an hnswlib file");
    const kb = await t.reopen();
    expect(await kb.indexedChunkIds("acme")).toEqual(chunkIds(t, "acme"));
    const [hit] = await kb.search("acme", { query: "cherries", k: 1, mode: "dense" });
    expect(hit.text).toBe("Charlie cherries are red.");
  });

  it.each(["single", "batch"])("survives kill -9 in the middle of ingestion (%s uploads): acknowledged documents are kept, index and database agree", async (mode) => {
    t = await openTestKb();
    // Small chunks: each document takes several embedding batches, so the kill lands mid-document.
    t.store.sqlite.prepare("UPDATE tenants SET settings = ?").run(JSON.stringify({ chunkSize: 32, chunkOverlap: 0 }));
    await t.kb.close();
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "ingest-child.ts"), t.dataDir, "12", "12", mode], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const acked: string[] = [];
    let paused = false;
    await new Promise<void>((resolve, reject) => {
      let buffer = "";
      child.stdout.on("data", (data: Buffer) => {
        buffer += data.toString();
        const lines = buffer.split("\n");
        buffer = lines.pop()!;
        for (const line of lines) {
          if (line.startsWith("ACK ")) acked.push(line.slice(4));
          if (line === "PAUSED") paused = true;
          if (line === "DONE") reject(new Error("the child finished before it was killed"));
          // All 12 acknowledged, and ingestion held inside its 12th embedding batch.
          if (acked.length === 12 && paused && !child.killed) child.kill("SIGKILL");
        }
      });
      child.on("exit", (code, signal) => (signal === "SIGKILL" ? resolve() : reject(new Error(`the child exited by itself (${code})`))));
      child.on("error", reject);
    });
    expect(acked).toHaveLength(12);

    // What the crash left behind: some documents not yet ingested.
    const peek = openDatabase(join(t.dataDir, "switchyard.db"));
    const count = (where: string) => peek.sqlite.prepare(`SELECT count(*) FROM documents WHERE ${where}`).pluck().get() as number;
    const [ready, processing, queued] = [count("status = 'ready'"), count("status = 'processing'"), count("status = 'queued'")];
    peek.close();
    expect(ready).toBeGreaterThan(0);
    expect(processing).toBe(1); // the document whose batch was held
    expect(queued).toBe(12 - ready - processing);
    expect(queued).toBeGreaterThan(0);
    // A batch saves its index once, after its last document: the crash came first, so the file was never written.
    if (mode === "batch") expect(existsSync(join(t.dataDir, "indexes", "globex.hnsw"))).toBe(false);

    const kb = await t.reopen();
    // Reopening reconciles the indexes at once ...
    for (const tenant of ["acme", "globex"]) expect(await kb.indexedChunkIds(tenant)).toEqual(chunkIds(t, tenant));
    // ... and resumes the acknowledged documents that were not finished.
    await kb.idle();
    const docs = [...(await kb.list("acme")), ...(await kb.list("globex"))];
    expect(docs.map((d) => d.id).sort()).toEqual([...acked].sort());
    expect(docs.map((d) => d.status)).toEqual(Array(12).fill("ready"));
    expect(docs.filter((d) => d.chunkCount === 0)).toEqual([]);
    for (const tenant of ["acme", "globex"]) await expectConsistent(t, kb, tenant);
    const [hit] = await kb.search("acme", { query: "Document 3 paragraph 7", k: 1, mode: "hybrid" });
    expect(hit.text).toContain("Document 3 paragraph 7 ");
  });

  it("fails a resumed document whose upload recorded no chunking, with the reason", async () => {
    t = await openTestKb();
    t.store.db.insert(documents).values({ id: "doc_bare", tenantId: "acme", title: "bare", format: "text", sha256: "s", sizeBytes: 5, status: "queued" }).run();
    writeFileSync(join(t.dataDir, "documents", "doc_bare"), "Hello");
    const kb = await t.reopen();
    await kb.idle();
    expect(await kb.get("acme", "doc_bare")).toMatchObject({ status: "failed", chunkCount: 0, error: expect.stringMatching(/no chunking/) });
  });
});

describe("the document chunking migration", () => {
  it("gives documents still queued at the upgrade their tenant's chunking, defaults filled in", () => {
    const dir = mkdtempSync(join(tmpdir(), "kb-migration-"));
    try {
      // The migrations folder as it was before the chunking columns.
      const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8")) as { entries: Array<{ tag: string }> };
      const before = join(dir, "migrations");
      cpSync(MIGRATIONS_DIR, before, { recursive: true });
      const upTo = journal.entries.findIndex((e) => e.tag === "0004_document_chunking");
      writeFileSync(join(before, "meta/_journal.json"), JSON.stringify({ ...journal, entries: journal.entries.slice(0, upTo) }));
      const path = join(dir, "old.db");
      const old = new Database(path);
      migrate(drizzle(old), { migrationsFolder: before });
      old.exec(`INSERT INTO tenants (id, name, settings) VALUES ('fine', 'fine', '{"chunkSize":48,"chunkOverlap":4}'), ('plain', 'plain', '{}');
        INSERT INTO documents (id, tenant_id, title, format, sha256, size_bytes, status) VALUES
          ('d1', 'fine', 't', 'text', 'a', 1, 'queued'), ('d2', 'plain', 't', 'text', 'b', 1, 'processing'), ('d3', 'fine', 't', 'text', 'c', 1, 'ready');`);
      old.close();
      const upgraded = openDatabase(path);
      const rows = upgraded.sqlite.prepare("SELECT id, chunk_size, chunk_overlap FROM documents ORDER BY id").all();
      upgraded.close();
      expect(rows).toEqual([
        { id: "d1", chunk_size: 48, chunk_overlap: 4 },
        { id: "d2", chunk_size: 256, chunk_overlap: 32 },
        { id: "d3", chunk_size: null, chunk_overlap: null },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
