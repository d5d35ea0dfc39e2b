import { and, gte, lt, eq, sql } from "drizzle-orm";
import type { Usage, UsageLine, UsageRecord } from "../../ports/usage.ts";
import { usage } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";

/** The usage port on SQLite or D1: token accounting in one row per tenant, minute, strategy and adapter. */
export class UsageStore implements Usage {
  /** Prepared once: every completion records its usage. */
  private readonly upsert;

  constructor(private readonly db: StoreDb) {
    const p = (name: string) => sql.placeholder(name);
    this.upsert = db
      .insert(usage)
      .values({ tenantId: p("tenantId"), bucket: p("bucket"), strategy: p("strategy"), adapter: p("adapter"), requests: 1, promptTokens: p("promptTokens"), completionTokens: p("completionTokens") })
      .onConflictDoUpdate({
        target: [usage.tenantId, usage.bucket, usage.strategy, usage.adapter],
        set: {
          requests: sql`${usage.requests} + 1`,
          promptTokens: sql`${usage.promptTokens} + excluded.prompt_tokens`,
          completionTokens: sql`${usage.completionTokens} + excluded.completion_tokens`,
        },
      })
      .prepare();
  }

  async record(r: UsageRecord): Promise<void> {
    const bucket = Math.floor((r.at ?? Date.now()) / 60_000) * 60_000;
    await this.upsert.run({ ...r, bucket, adapter: r.adapter ?? "" });
  }

  /** Totals per strategy and adapter over [from, to). */
  async summary(tenantId: string, from: number, to: number): Promise<UsageLine[]> {
    return this.db
      .select({
        strategy: usage.strategy,
        adapter: usage.adapter,
        requests: sql<number>`sum(${usage.requests})`,
        promptTokens: sql<number>`sum(${usage.promptTokens})`,
        completionTokens: sql<number>`sum(${usage.completionTokens})`,
      })
      .from(usage)
      .where(and(eq(usage.tenantId, tenantId), gte(usage.bucket, from), lt(usage.bucket, to)))
      .groupBy(usage.strategy, usage.adapter)
      .orderBy(usage.strategy, usage.adapter)
      .all();
  }
}
