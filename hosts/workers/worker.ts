/// <reference types="@cloudflare/workers-types" />
import { drizzle } from "drizzle-orm/d1";
import type { Hono } from "hono";
import { consoleLog, type LogLevel } from "../../edge/console-log.ts";
import { createEdge } from "../../edge/edge.ts";
import type { AppEnv } from "../../edge/env.ts";
import type { Planes, StaticAssets } from "../../ports/index.ts";
import { ApiKeyStore } from "../../services/store/api-keys.ts";
import * as schema from "../../services/store/schema.ts";
import { TenantStore } from "../../services/store/tenants.ts";
import { inProcessEvaluation } from "../../services/evaluation/index.ts";
import { RESPONSE_RETENTION_MS } from "../../ports/feedback.ts";
import { FeedbackStore } from "../../services/store/feedback.ts";
import { PreferenceStore } from "../../services/store/preferences.ts";
import { UsageStore } from "../../services/store/usage.ts";

/**
 * Cloudflare Workers entry: the same edge over D1 (migrations in services/store/migrations, applied
 * with `wrangler d1 migrations apply`). D1 holds tenants, keys and usage, so /v1/tenant, /v1/admin
 * and /v1/usage work here; inference, adapters and knowledge are not reachable from Workers yet
 * (the scale-out issue), so their routes answer 503 plane_unavailable. The playground page comes from
 * the [assets] binding, served by the same edge routes as on Node; its preference pairs are in D1, and
 * so are served responses and their ratings (/v1/feedback/summary). The Cron Trigger in wrangler.toml
 * calls scheduled(), which prunes responses past their retention: the Workers side of the Node host's
 * monitor timer (hosts/node/monitor-scheduler.ts); running monitors there too needs the inference plane.
 */
export interface WorkerEnv {
  DB: D1Database;
  /** Secret: the admin bearer key (`wrangler secret put ADMIN_KEY`). */
  ADMIN_KEY?: string;
  LOG_LEVEL?: LogLevel;
  REQUESTS_PER_MINUTE?: string;
  /** The playground's files (wrangler.toml's [assets]). */
  ASSETS?: Fetcher;
}

/** The playground's files from the [assets] binding: what it answers 200 for, with its type. */
function workerAssets(assets: Fetcher): StaticAssets {
  return {
    async get(path) {
      const res = await assets.fetch(new Request(`https://assets.local/${path}`));
      if (!res.ok) return undefined;
      return { body: new Uint8Array(await res.arrayBuffer()), contentType: res.headers.get("content-type") ?? "application/octet-stream" };
    },
  };
}

let cached: { env: WorkerEnv; app: Hono<AppEnv>; ready: Promise<void> } | undefined;

function appFor(env: WorkerEnv) {
  if (cached?.env === env) return cached;
  const db = drizzle(env.DB, { schema });
  const keys = new ApiKeyStore(db);
  const planes: Planes = { tenants: new TenantStore(db), keys, usage: new UsageStore(db), evaluation: inProcessEvaluation, preferences: new PreferenceStore(db), feedback: new FeedbackStore(db) };
  const app = createEdge(planes, {
    logger: consoleLog(env.LOG_LEVEL ?? "info", { service: "switchyard-edge" }),
    metrics: { observe: () => {} }, // Workers Analytics records requests; no Prometheus scrape here.
    health: { checkDatabase: async () => void (await env.DB.prepare("select 1").first()) },
    limits: { maxJsonBody: 1024 * 1024, maxUploadBody: 32 * 1024 * 1024, requestsPerMinute: Number(env.REQUESTS_PER_MINUTE ?? 600) },
    assets: env.ASSETS && workerAssets(env.ASSETS),
  });
  const ready = env.ADMIN_KEY ? keys.ensure(env.ADMIN_KEY, "admin", "configured").then(() => {}) : Promise.resolve();
  cached = { env, app, ready };
  return cached;
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    const { app, ready } = appFor(env);
    await ready;
    return app.fetch(request, env, ctx);
  },
  async scheduled(controller: ScheduledController, env: WorkerEnv): Promise<void> {
    await new FeedbackStore(drizzle(env.DB, { schema })).prune(controller.scheduledTime - RESPONSE_RETENTION_MS);
  },
} satisfies ExportedHandler<WorkerEnv>;
