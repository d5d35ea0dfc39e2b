/**
 * The shared counter behind the edge's request rate limits and token budgets: amounts spent per key over
 * the last 60 s. One process keeps it in memory (edge/middleware/rate-limit.ts, `SlidingWindow`); the
 * Workers host keeps it in a Durable Object per key (hosts/workers/rate-limiter.ts), so every isolate
 * counts against the same window. `take` is one step, so two edges racing for the last slot never both
 * get it.
 */
export interface RateWindow {
  /** Seconds until `amount` more fits under `limit` for `key` (0: it fits now; a limit <= 0 is no limit). */
  wait(key: string, limit: number, amount: number): Promise<number>;
  /** Records `amount` spent now. */
  add(key: string, amount: number): Promise<void>;
  /** `wait`, and when it is 0 `add`, as one step: 0 when recorded, else the seconds to wait (nothing recorded). */
  take(key: string, limit: number, amount: number): Promise<number>;
}
