import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { drizzle, type BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { applyMigrations } from "./migrate.ts";
import * as schema from "./schema.ts";

export type Db = BetterSQLite3Database<typeof schema>;

export interface OpenDatabase {
  db: Db;
  /** The raw connection, for SQL drizzle does not model (FTS5). */
  sqlite: Database.Database;
  close(): void;
}

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "migrations");

/**
 * Opens (creating if needed) the SQLite file and applies every pending migration (migrate.ts: safe when
 * several processes open one fresh file at once). The busy timeout is set first, so that switching a new
 * file to WAL, which needs the file to itself for a moment, waits for another process instead of failing.
 */
export function openDatabase(path: string): OpenDatabase {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  // Migrating waits up to this long for another process's migration; queries use the usual 5 s.
  sqlite.pragma("busy_timeout = 30000");
  whileBusy(() => sqlite.pragma("journal_mode = WAL"));
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  whileBusy(() => applyMigrations(sqlite, MIGRATIONS_DIR));
  sqlite.pragma("busy_timeout = 5000");
  const db = drizzle(sqlite, { schema });
  return { db, sqlite, close: () => sqlite.close() };
}

/**
 * Runs `step` again while SQLite answers SQLITE_BUSY, for up to 30 s. The busy timeout covers most waits, but
 * not all: switching a fresh file to WAL while another process does, or WAL recovery, can answer busy at once.
 */
function whileBusy<T>(step: () => T): T {
  const deadline = Date.now() + 30_000;
  for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
    try {
      return step();
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith("SQLITE_BUSY") !== true || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause);
    }
  }
}
