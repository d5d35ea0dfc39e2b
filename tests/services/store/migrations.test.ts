import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, openDatabase } from "../../../services/store/db.ts";
import { TenantStore } from "../../../services/store/tenants.ts";

const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8")) as { entries: { tag: string }[] };
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-migrations-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function appliedTags(path: string): number {
  const db = new Database(path, { readonly: true });
  const count = (db.prepare("select count(*) as n from __drizzle_migrations").get() as { n: number }).n;
  db.close();
  return count;
}

function columns(path: string, table: string): string[] {
  const db = new Database(path, { readonly: true });
  const names = (db.prepare(`pragma table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
  db.close();
  return names;
}

describe("migrations", () => {
  it("bring a fresh database to the latest schema", () => {
    const path = join(tempDir(), "fresh.db");
    openDatabase(path).close();
    expect(appliedTags(path)).toBe(journal.entries.length);
    expect(columns(path, "tenants")).toContain("limits");
    expect(columns(path, "api_keys")).toEqual(expect.arrayContaining(["hash", "prefix", "revoked_at"]));
  });

  it("bring a database made by the first release to the latest schema, keeping its rows", async () => {
    expect(journal.entries.length).toBeGreaterThan(1);
    // The first release's migrations folder: the same files, with only its journal entry.
    const firstRelease = join(tempDir(), "migrations");
    cpSync(MIGRATIONS_DIR, firstRelease, { recursive: true });
    writeFileSync(join(firstRelease, "meta/_journal.json"), JSON.stringify({ ...journal, entries: journal.entries.slice(0, 1) }));

    const path = join(tempDir(), "old.db");
    const old = new Database(path);
    migrate(drizzle(old), { migrationsFolder: firstRelease });
    old.prepare("insert into tenants (id, name) values ('ten_old', 'from v1')").run();
    old.close();
    expect(columns(path, "tenants")).not.toContain("limits");

    const upgraded = openDatabase(path);
    expect(appliedTags(path)).toBe(journal.entries.length);
    expect(columns(path, "tenants")).toContain("limits");
    const tenant = await new TenantStore(upgraded.db).get("ten_old");
    expect(tenant).toMatchObject({ name: "from v1", limits: {}, disabled: false });
    upgraded.close();
  });

  it("is idempotent: opening twice applies nothing new", () => {
    const path = join(tempDir(), "twice.db");
    openDatabase(path).close();
    openDatabase(path).close();
    expect(appliedTags(path)).toBe(journal.entries.length);
  });
});
