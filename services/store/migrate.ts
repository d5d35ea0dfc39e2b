/**
 * Applies the pending migrations of `services/store/migrations/` safely across processes. Drizzle's own
 * migrator reads which migrations are applied before it opens its (deferred) transaction, so two processes
 * opening one fresh file at once (an edge and its plane nodes started together on one data dir) both see
 * none applied and the second fails on `table already exists`. Here the read and the writes share one
 * `BEGIN IMMEDIATE` transaction: the first process takes the write lock, the others wait for it (busy
 * timeout) and then find everything applied. The bookkeeping is drizzle's own (`__drizzle_migrations`:
 * hash, created_at = the journal's folderMillis), so databases migrated either way stay compatible.
 */
import type Database from "better-sqlite3";
import { readMigrationFiles } from "drizzle-orm/migrator";

const TABLE = "__drizzle_migrations";

/** Runs the folder's migrations newer than the last applied one, in one immediate transaction; returns how many ran. */
export function applyMigrations(sqlite: Database.Database, migrationsFolder: string): number {
  const migrations = readMigrationFiles({ migrationsFolder });
  sqlite.exec("BEGIN IMMEDIATE");
  try {
    sqlite.exec(`CREATE TABLE IF NOT EXISTS "${TABLE}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
    const last = sqlite.prepare(`SELECT created_at FROM "${TABLE}" ORDER BY created_at DESC LIMIT 1`).get() as { created_at: number | string } | undefined;
    const pending = migrations.filter((m) => last === undefined || Number(last.created_at) < m.folderMillis);
    const record = sqlite.prepare(`INSERT INTO "${TABLE}" ("hash", "created_at") VALUES (?, ?)`);
    for (const migration of pending) {
      for (const statement of migration.sql) if (statement.trim() !== "") sqlite.exec(statement);
      record.run(migration.hash, migration.folderMillis);
    }
    sqlite.exec("COMMIT");
    return pending.length;
  } catch (err) {
    if (sqlite.inTransaction) sqlite.exec("ROLLBACK");
    throw err;
  }
}
