import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ingestCommand } from "../../cli/ingest.ts";
import { openDatabase } from "../../services/store/db.ts";
import { addTenant } from "../services/retrieval/helpers.ts";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "ingest-cli-"));
  const store = openDatabase(join(root, "data", "switchyard.db"));
  addTenant(store, "acme");
  store.close();
  const docs = join(root, "docs");
  mkdirSync(join(docs, "nested", "deeper"), { recursive: true });
  writeFileSync(join(docs, "intro.md"), "# Intro\n\nSwitchyard serves models.\n\n## Adapters\n\nLoRA adapters swap per request.");
  writeFileSync(join(docs, "nested", "faq.html"), "<h1>FAQ</h1><p>Ask the on-call engineer.</p><script>ignored()</script>");
  writeFileSync(join(docs, "nested", "deeper", "notes.txt"), "Plain notes about retrieval.");
  writeFileSync(join(docs, "nested", "photo.png"), new Uint8Array([0x89, 0x50]));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function run(argv: string[]): Promise<{ code: number; output: string }> {
  const out = new PassThrough();
  let output = "";
  out.on("data", (d: Buffer) => (output += d.toString()));
  const code = await ingestCommand(argv, out);
  return { code, output };
}

describe("switchyard ingest", () => {
  it("ingests folders recursively with progress, skipping unknown file types, idempotently", async () => {
    const first = await run([join(root, "docs"), "--tenant", "acme", "--data-dir", join(root, "data")]);
    expect(first.output).toContain("ingest: 100%");
    expect(first.output).toMatch(/ingested 3 of 3 files into tenant acme \(4 chunks\)/);
    expect(first.code).toBe(0);
    const store = openDatabase(join(root, "data", "switchyard.db"));
    const titles = store.sqlite.prepare("SELECT title FROM documents WHERE tenant_id = 'acme' AND status = 'ready' ORDER BY title").pluck().all();
    store.close();
    expect(titles).toEqual(["faq.html", "intro.md", "notes.txt"]);

    const again = await run([join(root, "docs", "intro.md"), "--tenant=acme", "--data-dir", join(root, "data")]);
    expect(again.output).toContain("already in the knowledge base");
    expect(again.code).toBe(0);
  });

  it("reports failing files and bad arguments", async () => {
    writeFileSync(join(root, "broken.jsonl"), "{not json");
    const failed = await run([join(root, "broken.jsonl"), join(root, "docs", "nested", "photo.png"), "--tenant", "acme", "--data-dir", join(root, "data")]);
    expect(failed.code).toBe(1);
    expect(failed.output).toMatch(/failed: .*broken.jsonl: JSONL line 1: invalid JSON/);
    expect(failed.output).toMatch(/failed: .*photo.png: unsupported document format/);
    expect((await run([join(root, "docs")])).output).toContain("--tenant is required");
    expect((await run([join(root, "missing"), "--tenant", "acme"])).code).toBe(2);
    expect((await run([join(root, "docs"), "--tenant", "nobody", "--data-dir", join(root, "data")])).output).toContain("unknown tenant: nobody");
  });
});
