import { Hono } from "hono";
import { z } from "zod";
import type { Usage } from "../../ports/usage.ts";
import type { AppEnv } from "../env.ts";
import { usageJson } from "../chat/openai-format.ts";
import { describe, queryParams } from "../middleware/body.ts";

const DAY = 24 * 60 * 60 * 1000;
const UsageQuery = z.object({
  /** Unix milliseconds; default: 30 days ago. */
  from: z.coerce.number().int().min(0).optional(),
  /** Unix milliseconds; default: now. */
  to: z.coerce.number().int().min(0).optional(),
});

/** The caller's token usage per strategy and adapter, mounted at /v1/usage. */
export function usageRoutes(usage: Usage): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", describe({ summary: "Token usage per strategy and adapter.", tags: ["usage"] }), queryParams(UsageQuery), async (c) => {
    const q = c.req.valid("query");
    const to = q.to ?? Date.now() + 60_000;
    const from = q.from ?? to - 30 * DAY;
    const lines = await usage.summary(c.get("tenant").id, from, to);
    const total = lines.reduce((t, l) => ({ requests: t.requests + l.requests, prompt: t.prompt + l.promptTokens, completion: t.completion + l.completionTokens }), { requests: 0, prompt: 0, completion: 0 });
    return c.json({
      object: "usage",
      from,
      to,
      data: lines.map((l) => ({ strategy: l.strategy, adapter: l.adapter || null, requests: l.requests, ...usageJson(l.promptTokens, l.completionTokens) })),
      total: { requests: total.requests, ...usageJson(total.prompt, total.completion) },
    });
  });
  return app;
}
