/// <reference types="@cloudflare/workers-types" />
import { drizzle } from "drizzle-orm/d1";
import type { Hono } from "hono";
import { consoleLog } from "../../edge/console-log.ts";
import { createEdge } from "../../edge/edge.ts";
import type { AppEnv } from "../../edge/env.ts";
import type { Planes, StaticAssets } from "../../ports/index.ts";
import { RESPONSE_RETENTION_MS } from "../../ports/feedback.ts";
import { inProcessEvaluation } from "../../services/evaluation/index.ts";
import { ApiKeyStore } from "../../services/store/api-keys.ts";
import { FeedbackStore } from "../../services/store/feedback.ts";
import { PreferenceStore } from "../../services/store/preferences.ts";
import * as schema from "../../services/store/schema.ts";
import { TenantStore } from "../../services/store/tenants.ts";
import { UsageStore } from "../../services/store/usage.ts";
import { WorkerConfigError, workerConfig, type WorkerEnv } from "./config.ts";
import { nodePlanes } from "./node-planes.ts";
import { DurableRateWindow } from "./rate-limiter.ts";

export type { WorkerEnv } from "./config.ts";
/** The Durable Object class behind RATE_LIMITER (wrangler.toml), exported from the Worker's main module as Workers requires. */
export { RateLimiter } from "./rate-limiter.ts";

/**
 * Cloudflare Workers entry: the same edge as on Node with other port implementations. D1 (migrations in
 * services/store/migrations, applied with `wrangler d1 migrations apply`) holds tenants, keys, usage,
 * preference pairs, served responses and their ratings; inference, knowledge, adapters, files and
 * fine-tuning are the HTTP clients of plane nodes named by vars (INFERENCE_URLS, RETRIEVAL_URL,
 * TRAINER_URL) and reached with the NODE_SECRET secret (node-planes.ts); requests and tokens per minute
 * are counted in one Durable Object per tenant and counter (rate-limiter.ts), shared by every isolate.
 * A plane without a URL, and evals (its runs need a long-lived worker loop), keep their routes, which
 * answer 503 plane_unavailable. The playground page comes from the [assets] binding. The Cron Trigger in wrangler.toml calls scheduled(), which prunes responses
 * past their retention (the Node host's monitor timer does the same, hosts/node/monitor-scheduler.ts).
 */

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

type Built = { app: Hono<AppEnv>; ready: Promise<void> } | { error: WorkerConfigError };

let cached: { env: WorkerEnv; built: Built } | undefined;

/** The edge for these bindings, built once per isolate (the same env object comes back on every request). */
function edgeFor(env: WorkerEnv): Built {
  if (cached?.env === env) return cached.built;
  let built: Built;
  try {
    built = build(env);
  } catch (err) {
    if (!(err instanceof WorkerConfigError)) throw err;
    built = { error: err };
  }
  cached = { env, built };
  return built;
}

function build(env: WorkerEnv): Built {
  const config = workerConfig(env);
  const db = drizzle(env.DB, { schema });
  const keys = new ApiKeyStore(db);
  const planes: Planes = {
    tenants: new TenantStore(db),
    keys,
    usage: new UsageStore(db),
    evaluation: inProcessEvaluation,
    preferences: new PreferenceStore(db),
    feedback: new FeedbackStore(db),
    ...nodePlanes(config),
  };
  const app = createEdge(planes, {
    logger: consoleLog(env.LOG_LEVEL ?? "info", { service: "switchyard-edge" }),
    metrics: { observe: () => {} }, // Workers Analytics records requests; no Prometheus scrape here.
    health: { checkDatabase: async () => void (await env.DB.prepare("select 1").first()) },
    limits: { maxJsonBody: 1024 * 1024, maxUploadBody: 32 * 1024 * 1024, requestsPerMinute: config.requestsPerMinute },
    rateWindow: new DurableRateWindow(env.RATE_LIMITER),
    assets: env.ASSETS && workerAssets(env.ASSETS),
  });
  const ready = env.ADMIN_KEY ? keys.ensure(env.ADMIN_KEY, "admin", "configured").then(() => {}) : Promise.resolve();
  return { app, ready };
}

/** A deployment whose bindings are wrong answers every request with the reason, in the OpenAI error shape. */
function misconfigured(error: WorkerConfigError): Response {
  const body = { error: { message: `The edge is misconfigured: ${error.message}.`, type: "server_error", param: null, code: "misconfigured" } };
  return Response.json(body, { status: 500 });
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    const built = edgeFor(env);
    if ("error" in built) return misconfigured(built.error);
    await built.ready;
    return built.app.fetch(request, env, ctx);
  },
  async scheduled(controller: ScheduledController, env: WorkerEnv): Promise<void> {
    await new FeedbackStore(drizzle(env.DB, { schema })).prune(controller.scheduledTime - RESPONSE_RETENTION_MS);
  },
} satisfies ExportedHandler<WorkerEnv>;
