import type { BaseSQLiteDatabase } from "drizzle-orm/sqlite-core";
import type * as schema from "./schema.ts";

/**
 * A drizzle database over either driver: better-sqlite3 (sync, embedded) or D1 (async, Workers).
 * Repositories await every query, which works for both.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type StoreDb = BaseSQLiteDatabase<"sync" | "async", any, typeof schema>;
