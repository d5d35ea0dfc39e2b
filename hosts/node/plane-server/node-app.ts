/**
 * What every plane node's HTTP app shares: /healthz (the process is up), /readyz (the plane is
 * loaded: 503 until then), /metrics (Prometheus), the bearer secret on everything else (401 without
 * it), request metrics, and PlaneErrors rendered in the one wire form (clients/wire/errors.ts).
 * Health and metrics stay open for probes and scrapers; they carry no tenant data.
 */
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { routePath } from "hono/route";
import { PlaneError } from "../../../ports/errors.ts";
import { isAuthorized } from "../../../clients/wire/auth.ts";
import { toWireError, wireStatus } from "../../../clients/wire/errors.ts";
import { NODE_HEALTH } from "../../../clients/wire/routes.ts";
import type { HttpMetrics } from "../../../edge/middleware/request-context.ts";

export interface NodeAppOptions {
  secrets: readonly string[];
  /** Whether the plane is loaded (readiness). */
  ready: () => boolean;
  metrics: HttpMetrics;
  metricsText: () => Promise<string>;
}

export function createNodeApp(options: NodeAppOptions): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    options.metrics.observe({ method: c.req.method, route: routePath(c, -1), status: c.res.status }, (performance.now() - started) / 1000);
  });
  app.get(NODE_HEALTH.live, (c) => c.json({ status: "ok" }));
  app.get(NODE_HEALTH.ready, (c) => (options.ready() ? c.json({ status: "ready" }) : c.json({ status: "loading" }, 503)));
  app.get(NODE_HEALTH.metrics, async (c) => c.text(await options.metricsText(), 200, { "content-type": "text/plain; version=0.0.4" }));
  app.use("/v1/*", async (c, next) => {
    if (!isAuthorized(c.req.header("authorization"), options.secrets)) {
      return renderError(c, new PlaneError("forbidden", "This node needs the node secret (Authorization: Bearer).", { code: "unauthenticated" }), 401);
    }
    if (!options.ready()) return renderError(c, new PlaneError("unavailable", "The plane is still loading.", { code: "not_ready" }));
    await next();
  });
  app.onError((err, c) => {
    if (err instanceof PlaneError) return renderError(c, err);
    console.error(err);
    return renderError(c, new PlaneError("unavailable", "The plane node failed on this request.", { code: "internal_error" }), 500);
  });
  return app;
}

export function renderError(c: Context, error: PlaneError, status = wireStatus(error.kind)): Response {
  return c.json({ error: toWireError(error) }, status as 400);
}

/** The request's JSON body; invalid_request when it is not JSON. */
export async function jsonBody(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new PlaneError("invalid_request", "The request body is not valid JSON.", { code: "invalid_json" });
  }
}

export function invalidNodeRequest(message: string, param?: string): PlaneError {
  return new PlaneError("invalid_request", message, { code: "invalid_node_request", param: param || undefined });
}

/** `value` as `schema` says, else invalid_request naming the first bad field (of `what`, default the body). */
export function parseWire<T>(schema: z.ZodType<T>, value: unknown, what = "body"): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.join(".");
  throw invalidNodeRequest(`Invalid request: ${path || what}: ${issue.message}`, path);
}
