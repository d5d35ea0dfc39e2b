import { and, desc, eq, gte, isNotNull, lt, lte, sql, type SQL } from "drizzle-orm";
import type { Feedback, FeedbackBucket, FeedbackSummaryQuery, Rating, RatedResponse, ServedResponse } from "../../ports/feedback.ts";
import { MAX_STORED_PROMPT } from "../../ports/feedback.ts";
import { chatResponses, type ChatResponseRow } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";

/**
 * The feedback port on SQLite or D1: one row per served chat completion, its rating in the same row
 * (so a later rating replaces the earlier one by construction). Every query is filtered by tenant.
 * Buckets are computed in SQL (`created_at - created_at % width`), the same on both drivers.
 */
export class FeedbackStore implements Feedback {
  constructor(private readonly db: StoreDb) {}

  async recordResponse(r: ServedResponse): Promise<void> {
    await this.db
      .insert(chatResponses)
      .values({ id: r.id, tenantId: r.tenantId, strategy: r.strategy, adapter: r.adapter ?? "", prompt: r.prompt.slice(0, MAX_STORED_PROMPT), createdAt: r.createdAt })
      .onConflictDoNothing();
  }

  async rate(tenantId: string, responseId: string, rating: Rating, comment?: string): Promise<RatedResponse | undefined> {
    const [row] = await this.db
      .update(chatResponses)
      .set({ rating, comment: comment ?? null, ratedAt: Date.now() })
      .where(and(eq(chatResponses.tenantId, tenantId), eq(chatResponses.id, responseId)))
      .returning();
    return row && ratedOf(row);
  }

  async summary(tenantId: string, query: FeedbackSummaryQuery): Promise<FeedbackBucket[]> {
    const width = query.bucketMs && query.bucketMs > 0 ? Math.floor(query.bucketMs) : 0;
    const bucket = width > 0 ? sql<number>`(${chatResponses.createdAt} - ${chatResponses.createdAt} % ${width})` : sql<number>`0`;
    const byAdapter = query.groupBy.includes("adapter");
    const byStrategy = query.groupBy.includes("strategy");
    const where: SQL[] = [eq(chatResponses.tenantId, tenantId), isNotNull(chatResponses.rating)];
    if (query.since !== undefined) where.push(gte(chatResponses.createdAt, query.since));
    if (query.until !== undefined) where.push(lte(chatResponses.createdAt, query.until));
    const adapter = byAdapter ? chatResponses.adapter : sql<string>`''`;
    const strategy = byStrategy ? chatResponses.strategy : sql<string>`''`;
    const rows = await this.db
      .select({
        bucket: bucket.as("bucket"),
        adapter: sql<string>`${adapter}`.as("adapter_group"),
        strategy: sql<string>`${strategy}`.as("strategy_group"),
        up: sql<number>`sum(case when ${chatResponses.rating} = 'up' then 1 else 0 end)`,
        down: sql<number>`sum(case when ${chatResponses.rating} = 'down' then 1 else 0 end)`,
      })
      .from(chatResponses)
      .where(and(...where))
      .groupBy(sql`bucket`, sql`adapter_group`, sql`strategy_group`)
      .orderBy(sql`bucket`, sql`adapter_group`, sql`strategy_group`);
    return rows.map((r) => ({
      bucket: Number(r.bucket),
      ...(byAdapter ? { adapter: r.adapter } : {}),
      ...(byStrategy ? { strategy: r.strategy } : {}),
      up: Number(r.up),
      down: Number(r.down),
    }));
  }

  async recentPrompts(tenantId: string, adapter: string | null, limit: number): Promise<string[]> {
    const rows = await this.db
      .select({ prompt: chatResponses.prompt })
      .from(chatResponses)
      .where(and(eq(chatResponses.tenantId, tenantId), eq(chatResponses.adapter, adapter ?? "")))
      .orderBy(desc(chatResponses.createdAt), desc(sql`rowid`))
      .limit(limit);
    return rows.map((r) => r.prompt);
  }

  async prune(before: number): Promise<number> {
    const deleted = await this.db.delete(chatResponses).where(lt(chatResponses.createdAt, before)).returning({ id: chatResponses.id });
    return deleted.length;
  }
}

function ratedOf(row: ChatResponseRow): RatedResponse {
  return {
    id: row.id,
    tenantId: row.tenantId,
    strategy: row.strategy,
    ...(row.adapter ? { adapter: row.adapter } : {}),
    prompt: row.prompt,
    createdAt: row.createdAt,
    rating: row.rating!,
    ...(row.comment !== null ? { comment: row.comment } : {}),
    ratedAt: row.ratedAt!,
  };
}

