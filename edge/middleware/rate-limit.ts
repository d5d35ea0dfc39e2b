import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import { tooManyRequests } from "../errors.ts";
import type { TenantLimits } from "../tenant-settings.ts";

/**
 * Per-tenant requests-per-minute over a sliding window of the last 60 s, in memory: each process
 * enforces its own share, which is what a single embedded node needs.
 */
export class RateLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(private readonly defaultPerMinute: number, private readonly now: () => number = Date.now) {}

  /** Records a request; returns 0 if allowed, else the seconds until one would be. */
  take(tenantId: string, perMinute: number): number {
    if (perMinute <= 0) return 0;
    const now = this.now();
    const recent = (this.hits.get(tenantId) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= perMinute) {
      this.hits.set(tenantId, recent);
      return (recent[recent.length - perMinute] + 60_000 - now) / 1000;
    }
    recent.push(now);
    this.hits.set(tenantId, recent);
    return 0;
  }

  middleware(): MiddlewareHandler<AppEnv> {
    return async (c, next) => {
      const tenant = c.get("tenant");
      const perMinute = (tenant.limits as TenantLimits).requestsPerMinute ?? this.defaultPerMinute;
      const wait = this.take(tenant.id, perMinute);
      if (wait > 0) {
        throw tooManyRequests(`Rate limit reached: ${perMinute} requests per minute. Try again in ${Math.ceil(wait)} s.`, wait);
      }
      await next();
    };
  }
}
