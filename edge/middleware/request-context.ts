import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { AppEnv, Log } from "../env.ts";

export interface HttpMetrics {
  observe(labels: { method: string; route: string; status: number }, seconds: number): void;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane), a child logger carrying it,
 * one structured access-log line, and a metrics observation labelled by route pattern, not raw path.
 */
export function requestContext(logger: Log, metrics: HttpMetrics): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("startedAt", started);
    c.set("logger", logger.child({ requestId }));
    await next();
    c.header("X-Request-Id", requestId);
    const seconds = (performance.now() - started) / 1000;
    const route = routePath(c, -1); // the last matched pattern: bounded label cardinality, even for 404s
    metrics.observe({ method: c.req.method, route, status: c.res.status }, seconds);
    c.get("logger").info(
      { method: c.req.method, path: c.req.path, route, status: c.res.status, ms: Math.round(seconds * 1e4) / 10 },
      "request",
    );
  };
}
