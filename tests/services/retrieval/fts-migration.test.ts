import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { createKnowledgeBase } from "../../../services/retrieval/knowledge-base.ts";
import { MIGRATIONS_DIR, openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { hashingEmbedder, policyOf, utf8 } from "./helpers.ts";

const TAG = "0008_chunks_fts_fields";
const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8")) as { entries: Array<{ tag: string }> };
const statements = readFileSync(join(MIGRATIONS_DIR, `${TAG}.sql`), "utf8").split("--> statement-breakpoint");

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A database at the schema before 0008 (one-column FTS over chunk text), with a tenant's ready document of two chunks. */
function oldDatabase(): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "kb-fts-migration-"));
  dirs.push(dir);
  const before = join(dir, "migrations");
  cpSync(MIGRATIONS_DIR, before, { recursive: true });
  const upTo = journal.entries.findIndex((e) => e.tag === TAG);
  expect(upTo).toBeGreaterThan(0);
  writeFileSync(join(before, "meta/_journal.json"), JSON.stringify({ ...journal, entries: journal.entries.slice(0, upTo) }));
  const path = join(dir, "switchyard.db");
  const old = new Database(path);
  old.pragma("journal_mode = WAL");
  migrate(drizzle(old), { migrationsFolder: before });
  old.exec(`INSERT INTO tenants (id, name) VALUES ('acme', 'acme');
    INSERT INTO documents (id, tenant_id, title, format, sha256, size_bytes, status, chunk_count, chunk_size, chunk_overlap)
      VALUES ('doc_old', 'acme', 'Centrifugal pump handbook', 'markdown', 'x', 10, 'ready', 2, 256, 32);
    INSERT INTO chunks (tenant_id, document_id, position, text, heading_path, start_offset, end_offset, token_count) VALUES
      ('acme', 'doc_old', 0, 'Replace the gasket every spring.', '["Seals"]', 0, 32, 6),
      ('acme', 'doc_old', 1, 'Bleed the air before starting.', '["Priming"]', 33, 63, 6);`);
  // The old index answered on text only.
  expect(old.prepare("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'gasket'").pluck().get()).toBe(1);
  old.close();
  return { dir, path };
}

async function expectAnswers(store: OpenDatabase, dataDir: string): Promise<void> {
  const kb = await createKnowledgeBase({ db: store.db, sqlite: store.sqlite, dataDir, embedder: hashingEmbedder() });
  try {
    const search = async (query: string) => (await kb.search("acme", { query, k: 5, mode: "bm25" })).map((h) => h.position);
    expect(await search("gasket")).toEqual([0]);
    // Titles and heading paths are indexed now.
    expect((await search("centrifugal handbook")).sort()).toEqual([0, 1]);
    expect(await search("priming")).toEqual([1]);
    expect((await kb.search("acme", { query: "bleed the air", k: 1, mode: "dense" }))[0].position).toBe(1);
    // The triggers keep the new index in step: a new document is found by its title, a deleted one is gone.
    const { document } = await kb.upload("acme", { bytes: utf8("Lubricate bearings monthly."), fileName: "notes.txt", title: "Gearbox notes" }, policyOf(store, "acme"));
    expect((await kb.search("acme", { query: "gearbox", k: 5, mode: "bm25" })).map((h) => h.documentId)).toEqual([document.id]);
    await kb.delete("acme", "doc_old");
    expect(await search("gasket centrifugal priming")).toEqual([]);
    expect(() => store.sqlite.exec("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')")).not.toThrow();
  } finally {
    await kb.close();
  }
}

describe("migration 0008 (weighted FTS fields)", () => {
  it("rebuilds the index of a knowledge base made before it, which then answers on title, headings and text", async () => {
    const { dir, path } = oldDatabase();
    const store = openDatabase(path);
    try {
      const columns = store.sqlite.prepare("SELECT name FROM pragma_table_info('chunks_fts')").pluck().all();
      expect(columns).toEqual(["title", "heading", "text"]);
      await expectAnswers(store, dir);
    } finally {
      store.close();
    }
  });

  // A process killed after the first statements of the migration (inside drizzle's transaction, or
  // statement by statement): the next start runs it again from the top and the knowledge base answers.
  it.each([
    ["inside a transaction", true],
    ["without one", false],
  ])("leaves the knowledge base usable when the process dies midway, %s", async (_name, transaction) => {
    const { dir, path } = oldDatabase();
    const partial = statements.slice(0, statements.findIndex((s) => s.includes("INSERT INTO `chunks_fts`")) + 1);
    const child = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import Database from "better-sqlite3";
         const db = new Database(process.argv[1]);
         if (process.argv[3] === "1") db.exec("BEGIN");
         for (const s of JSON.parse(process.argv[2])) db.exec(s);
         process.kill(process.pid, "SIGKILL");`,
        path,
        JSON.stringify(partial),
        transaction ? "1" : "0",
      ],
      { cwd: process.cwd(), encoding: "utf8" },
    );
    expect(child.signal).toBe("SIGKILL");
    const store = openDatabase(path);
    try {
      await expectAnswers(store, dir);
    } finally {
      store.close();
    }
  });
});
