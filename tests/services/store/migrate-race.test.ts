/**
 * Processes opening one fresh SQLite file at the same moment (an edge and its plane nodes started together
 * on one data dir) each apply the migrations: every one succeeds, and the schema is applied once. A few
 * rounds, each on a fresh file, so that the processes' start-up is paid once and the race is run often.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR } from "../../../services/store/db.ts";
import { REPO_ROOT } from "../../helpers/model-path.ts";

const PROCESSES = 3;
const ROUNDS = 10;
const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8")) as { entries: unknown[] };
const dir = mkdtempSync(join(tmpdir(), "switchyard-migrate-race-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each child loads the store, says "ready", then opens each path the parent sends at the moment it names
// (the same for all: a spin up to it, so no child waits on a wake-up) and answers one line.
const CHILD = `
import { createInterface } from "node:readline";
import { register } from "tsx/esm/api";
register();
const { openDatabase } = await import(${JSON.stringify(join(REPO_ROOT, "services/store/db.ts"))});
process.stdout.write("ready\\n");
for await (const line of createInterface({ input: process.stdin })) {
  const [at, path] = line.split(" ");
  while (Date.now() < Number(at));
  try {
    openDatabase(path).close();
    process.stdout.write("migrated\\n");
  } catch (err) {
    process.stdout.write("failed: " + (err instanceof Error ? err.message.split("\\n")[0] : String(err)) + "\\n");
  }
}
`;

function child() {
  const proc = spawn(process.execPath, ["--input-type=module", "-e", CHILD], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const waiting: ((line: string) => void)[] = [];
  let buffer = "";
  proc.stdout.on("data", (d: Buffer) => {
    buffer += d.toString();
    for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
      waiting.shift()?.(buffer.slice(0, at));
      buffer = buffer.slice(at + 1);
    }
  });
  const line = () => new Promise<string>((resolve) => waiting.push(resolve));
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return { ready: line(), open: (path: string, at: number) => (proc.stdin.write(`${at} ${path}\n`), line()), stop: () => (proc.stdin.end(), exited) };
}

function applied(path: string): { hashes: string[]; tenantsTables: number } {
  const db = new Database(path, { readonly: true });
  const hashes = (db.prepare("select hash from __drizzle_migrations").all() as { hash: string }[]).map((r) => r.hash);
  const { n } = db.prepare("select count(*) as n from sqlite_master where type = 'table' and name = 'tenants'").get() as { n: number };
  db.close();
  return { hashes, tenantsTables: n };
}

describe("migrations across processes", () => {
  it(`${PROCESSES} processes migrating one fresh file at once all succeed, and each migration is applied once`, async () => {
    const children = Array.from({ length: PROCESSES }, child);
    try {
      expect(await Promise.all(children.map((c) => c.ready))).toEqual(children.map(() => "ready"));
      for (let round = 0; round < ROUNDS; round++) {
        const path = join(dir, `round-${round}.db`);
        const at = Date.now() + 30;
        expect(await Promise.all(children.map((c) => c.open(path, at))), `round ${round}`).toEqual(children.map(() => "migrated"));
        const { hashes, tenantsTables } = applied(path);
        expect(hashes).toHaveLength(journal.entries.length);
        expect(new Set(hashes).size).toBe(journal.entries.length);
        expect(tenantsTables).toBe(1);
      }
    } finally {
      await Promise.all(children.map((c) => c.stop()));
    }
  });
});
