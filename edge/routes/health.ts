import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { describe } from "../middleware/body.ts";

export interface HealthDeps {
  /** Resolves when the database answers a trivial query. */
  checkDatabase(): Promise<void>;
  /** Prometheus text exposition, or undefined where metrics are not collected. */
  metricsText?: () => Promise<string>;
}

export function healthRoutes(deps: HealthDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/health", describe({ summary: "Liveness: the process answers.", tags: ["ops"] }), (c) => c.json({ status: "ok" }));

  app.get("/ready", describe({ summary: "Readiness: the database is reachable.", tags: ["ops"] }), async (c) => {
    try {
      await deps.checkDatabase();
      return c.json({ status: "ready" });
    } catch (err) {
      c.get("logger").warn({ err }, "readiness check failed");
      return c.json({ status: "unavailable", reason: "database unreachable" }, 503);
    }
  });

  if (deps.metricsText) {
    const metricsText = deps.metricsText;
    app.get("/metrics", describe({ summary: "Prometheus metrics.", tags: ["ops"] }), async (c) =>
      c.text(await metricsText(), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }),
    );
  }
  return app;
}
