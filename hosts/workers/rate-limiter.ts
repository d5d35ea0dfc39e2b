/// <reference types="@cloudflare/workers-types" />
import { DurableObject } from "cloudflare:workers";
import { secondsUntilFits, WINDOW_MS, type Spent } from "../../edge/middleware/rate-limit.ts";
import type { RateWindow } from "../../ports/rate-limits.ts";

/**
 * The edge's rate limits and token budgets on Workers: one Durable Object per counted key (a tenant's
 * requests, a tenant's tokens), found by name, so every isolate of every colo counts against the same
 * sliding minute. A Durable Object runs one call at a time, so `take` (check, then record) is atomic:
 * two isolates racing for the last request never both get it. Amounts live in the object's SQLite
 * storage (wrangler.toml: new_sqlite_classes), so an evicted object forgets nothing still in the window;
 * each call first drops what left it.
 */
export class RateLimiter extends DurableObject<Record<string, never>> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Record<string, never>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS spent (at INTEGER NOT NULL, amount INTEGER NOT NULL)");
  }

  wait(limit: number, amount: number): number {
    return secondsUntilFits(this.recent(), Date.now(), limit, amount);
  }

  add(amount: number): void {
    this.sql.exec("INSERT INTO spent (at, amount) VALUES (?, ?)", Date.now(), amount);
  }

  take(limit: number, amount: number): number {
    const wait = this.wait(limit, amount);
    if (wait === 0) this.add(amount);
    return wait;
  }

  /** What is still in the window, oldest first. */
  private recent(): Spent[] {
    this.sql.exec("DELETE FROM spent WHERE at <= ?", Date.now() - WINDOW_MS);
    return this.sql.exec<{ at: number; amount: number }>("SELECT at, amount FROM spent ORDER BY at").toArray();
  }
}

/** The RateWindow port over the RateLimiter objects (RPC to the key's object). */
export class DurableRateWindow implements RateWindow {
  constructor(private readonly objects: DurableObjectNamespace<RateLimiter>) {}

  wait(key: string, limit: number, amount: number): Promise<number> {
    return this.object(key).wait(limit, amount);
  }

  add(key: string, amount: number): Promise<void> {
    return this.object(key).add(amount);
  }

  take(key: string, limit: number, amount: number): Promise<number> {
    return this.object(key).take(limit, amount);
  }

  private object(key: string): DurableObjectStub<RateLimiter> {
    return this.objects.get(this.objects.idFromName(key));
  }
}
