import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import { tooManyRequests } from "../errors.ts";
import type { TenantLimits } from "../tenant-settings.ts";

/**
 * Amounts spent per key over the last 60 s, in memory: each process enforces its own share, which is
 * what a single embedded node needs.
 */
export class SlidingWindow {
  private readonly spent = new Map<string, { at: number; amount: number }[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Seconds until `amount` more would fit under `limit` (0 = it fits now). */
  wait(key: string, limit: number, amount: number): number {
    if (limit <= 0) return 0;
    const entries = this.recent(key);
    let total = entries.reduce((sum, e) => sum + e.amount, 0);
    if (total + amount <= limit) return 0;
    for (const e of entries) {
      total -= e.amount;
      if (total + amount <= limit) return Math.max(0.001, (e.at + 60_000 - this.now()) / 1000);
    }
    return 60;
  }

  add(key: string, amount: number): void {
    this.recent(key).push({ at: this.now(), amount });
  }

  private recent(key: string) {
    const cutoff = this.now() - 60_000;
    const entries = (this.spent.get(key) ?? []).filter((e) => e.at > cutoff);
    this.spent.set(key, entries);
    return entries;
  }
}

/** Per-tenant requests per minute (tenant limit, else the configured default). */
export function requestRateLimit(defaultPerMinute: number, window = new SlidingWindow()): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const tenant = c.get("tenant");
    const perMinute = (tenant.limits as TenantLimits).requestsPerMinute ?? defaultPerMinute;
    const wait = window.wait(tenant.id, perMinute, 1);
    if (wait > 0) throw tooManyRequests(`Rate limit reached: ${perMinute} requests per minute. Try again in ${Math.ceil(wait)} s.`, wait);
    window.add(tenant.id, 1);
    await next();
  };
}

/** Per-tenant tokens per minute: checked before a generation, charged with the tokens it really used. */
export class TokenBudget {
  constructor(private readonly window = new SlidingWindow()) {}

  check(tenant: { id: string; limits: Record<string, unknown> }, promptTokens: number): void {
    const perMinute = (tenant.limits as TenantLimits).tokensPerMinute ?? 0;
    const wait = this.window.wait(tenant.id, perMinute, Math.min(promptTokens, perMinute));
    if (wait > 0) throw tooManyRequests(`Token rate limit reached: ${perMinute} tokens per minute. Try again in ${Math.ceil(wait)} s.`, wait, "tokens_rate_limit_exceeded");
  }

  charge(tenantId: string, tokens: number): void {
    this.window.add(tenantId, tokens);
  }
}
