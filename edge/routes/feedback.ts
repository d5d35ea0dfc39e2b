import { Hono } from "hono";
import { z } from "zod";
import { MAX_STORED_PROMPT, type Feedback, type FeedbackBucket, type RatedResponse } from "../../ports/feedback.ts";
import type { AppEnv } from "../env.ts";
import { badRequest, notFound } from "../errors.ts";
import { describe, jsonBody, queryParams } from "../middleware/body.ts";
import type { MonitoringMetrics } from "../monitoring/metrics.ts";

/**
 * Production feedback: `POST /v1/chat/completions/:id/feedback {rating, comment?}` rates a served chat
 * completion (kept for RESPONSE_RETENTION_MS, ports/feedback.ts); a later rating replaces the earlier
 * one. Another tenant's id, an unknown one and a pruned one all answer 404. `GET /v1/feedback/summary`
 * counts up and down ratings per adapter and/or strategy, per time bucket (by when the response was served).
 */

export const FeedbackRequest = z.object({ rating: z.enum(["up", "down"]), comment: z.string().max(MAX_STORED_PROMPT).optional() }).strict();

const BUCKETS = { hour: 3_600_000, day: 86_400_000, week: 604_800_000 } as const;

const SummaryQuery = z.object({
  group_by: z
    .string()
    .default("adapter,strategy")
    .transform((s, ctx) => {
      const parts = s.split(",").map((p) => p.trim()).filter(Boolean);
      const bad = parts.find((p) => p !== "adapter" && p !== "strategy");
      if (bad) ctx.addIssue({ code: "custom", message: `group_by takes adapter and/or strategy, not '${bad}'` });
      return [...new Set(parts)] as ("adapter" | "strategy")[];
    }),
  bucket: z.enum(["hour", "day", "week", "all"]).default("day"),
  since: z.coerce.number().int().min(0).optional(),
  until: z.coerce.number().int().min(0).optional(),
});

export function ratedJson(r: RatedResponse) {
  return {
    id: r.id,
    object: "chat.completion.feedback",
    rating: r.rating,
    comment: r.comment ?? null,
    strategy: r.strategy,
    adapter: r.adapter ?? null,
    created_at: Math.floor(r.createdAt / 1000),
    rated_at: Math.floor(r.ratedAt / 1000),
  };
}

function bucketJson(b: FeedbackBucket, width: number | undefined) {
  const rated = b.up + b.down;
  return {
    bucket_start: width ? Math.floor(b.bucket / 1000) : null,
    ...(b.adapter !== undefined ? { adapter: b.adapter || null } : {}),
    ...(b.strategy !== undefined ? { strategy: b.strategy } : {}),
    up: b.up,
    down: b.down,
    rated,
    up_rate: rated === 0 ? null : b.up / rated,
  };
}

/** The rating route, mounted in the chat routes at /completions/:id/feedback. */
export function rateRoute(app: Hono<AppEnv>, feedback: Feedback, metrics: MonitoringMetrics): void {
  app.post("/completions/:id/feedback", describe({ summary: "Rate a chat completion served to the caller (up or down, with an optional comment); a later rating replaces it.", tags: ["feedback"] }), jsonBody(FeedbackRequest), async (c) => {
    const tenant = c.get("tenant");
    const id = c.req.param("id");
    const { rating, comment } = c.req.valid("json");
    const rated = await feedback.rate(tenant.id, id, rating, comment);
    if (!rated) throw notFound(`No chat completion with id '${id}' (responses are kept for 30 days).`, "id");
    metrics.feedback({ tenant: tenant.id, adapter: rated.adapter ?? "", strategy: rated.strategy, rating });
    return c.json(ratedJson(rated));
  });
}

/** /v1/feedback: the report over the caller's ratings. */
export function feedbackRoutes(feedback: Feedback): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/summary", describe({ summary: "Up and down ratings per adapter and strategy over time (`group_by=adapter,strategy`, `bucket=hour|day|week|all`, `since`/`until` in unix seconds).", tags: ["feedback"] }), queryParams(SummaryQuery), async (c) => {
    const q = c.req.valid("query");
    if (q.since !== undefined && q.until !== undefined && q.until < q.since) throw badRequest("'until' is before 'since'.", "until");
    const width = q.bucket === "all" ? undefined : BUCKETS[q.bucket];
    const buckets = await feedback.summary(c.get("tenant").id, {
      groupBy: q.group_by,
      bucketMs: width,
      since: q.since === undefined ? undefined : q.since * 1000,
      until: q.until === undefined ? undefined : q.until * 1000 + 999,
    });
    return c.json({ object: "feedback.summary", group_by: q.group_by, bucket: q.bucket, data: buckets.map((b) => bucketJson(b, width)) });
  });
  return app;
}
