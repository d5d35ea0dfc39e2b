import type { MiddlewareHandler } from "hono";
import type { RateWindow } from "../../ports/rate-limits.ts";
import type { AppEnv } from "../env.ts";
import { tooManyRequests } from "../errors.ts";
import type { TenantLimits } from "../tenant-settings.ts";

/** The window's length: what was spent longer ago than this no longer counts. */
export const WINDOW_MS = 60_000;

/** One amount spent, at unix ms `at`. */
export interface Spent {
  at: number;
  amount: number;
}

/**
 * Seconds until `amount` more fits under `limit`, given what was spent within the window (oldest first):
 * 0 when it fits now, else when enough of the oldest entries have left; 60 when even an empty window
 * would not hold it. The one rule every RateWindow applies.
 */
export function secondsUntilFits(recent: readonly Spent[], now: number, limit: number, amount: number): number {
  if (limit <= 0) return 0;
  let total = recent.reduce((sum, e) => sum + e.amount, 0);
  if (total + amount <= limit) return 0;
  for (const e of recent) {
    total -= e.amount;
    if (total + amount <= limit) return Math.max(0.001, (e.at + WINDOW_MS - now) / 1000);
  }
  return WINDOW_MS / 1000;
}

/**
 * The RateWindow in this process's memory: each process enforces its own share, which is what a single
 * embedded node needs (Workers shares one across isolates: hosts/workers/rate-limiter.ts).
 */
export class SlidingWindow implements RateWindow {
  private readonly spent = new Map<string, Spent[]>();

  constructor(private readonly now: () => number = Date.now) {}

  async wait(key: string, limit: number, amount: number): Promise<number> {
    return secondsUntilFits(this.recent(key), this.now(), limit, amount);
  }

  async add(key: string, amount: number): Promise<void> {
    this.recent(key).push({ at: this.now(), amount });
  }

  async take(key: string, limit: number, amount: number): Promise<number> {
    const wait = secondsUntilFits(this.recent(key), this.now(), limit, amount);
    if (wait === 0) this.recent(key).push({ at: this.now(), amount });
    return wait;
  }

  private recent(key: string): Spent[] {
    const cutoff = this.now() - WINDOW_MS;
    const entries = (this.spent.get(key) ?? []).filter((e) => e.at > cutoff);
    this.spent.set(key, entries);
    return entries;
  }
}

/** Per-tenant requests per minute (tenant limit, else the configured default); a refused request is not counted. */
export function requestRateLimit(defaultPerMinute: number, window: RateWindow = new SlidingWindow()): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const tenant = c.get("tenant");
    const perMinute = (tenant.limits as TenantLimits).requestsPerMinute ?? defaultPerMinute;
    const wait = perMinute > 0 ? await window.take(`requests:${tenant.id}`, perMinute, 1) : 0;
    if (wait > 0) throw tooManyRequests(`Rate limit reached: ${perMinute} requests per minute. Try again in ${Math.ceil(wait)} s.`, wait);
    await next();
  };
}

/** Per-tenant tokens per minute: checked before a generation, charged with the tokens it really used. */
export class TokenBudget {
  constructor(private readonly window: RateWindow = new SlidingWindow()) {}

  async check(tenant: { id: string; limits: Record<string, unknown> }, promptTokens: number): Promise<void> {
    const perMinute = (tenant.limits as TenantLimits).tokensPerMinute ?? 0;
    if (perMinute <= 0) return;
    const wait = await this.window.wait(`tokens:${tenant.id}`, perMinute, Math.min(promptTokens, perMinute));
    if (wait > 0) throw tooManyRequests(`Token rate limit reached: ${perMinute} tokens per minute. Try again in ${Math.ceil(wait)} s.`, wait, "tokens_rate_limit_exceeded");
  }

  /** Charged whatever the tenant's limit, so a budget set later counts the minute's tokens already spent. */
  async charge(tenantId: string, tokens: number): Promise<void> {
    await this.window.add(`tokens:${tenantId}`, tokens);
  }
}
