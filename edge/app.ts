import { Hono } from "hono";
import type { RateWindow } from "../ports/rate-limits.ts";
import type { ApiKeys, Tenants } from "../ports/tenants.ts";
import type { AppEnv, Log } from "./env.ts";
import { requireKey } from "./middleware/auth.ts";
import { bodyLimits } from "./middleware/body.ts";
import { notFoundOrMethodNotAllowed, onError } from "./middleware/errors.ts";
import { requestRateLimit, SlidingWindow } from "./middleware/rate-limit.ts";
import { requestContext, type HttpMetrics } from "./middleware/request-context.ts";
import { openApiDocument } from "./openapi.ts";
import { adminRoutes } from "./routes/admin.ts";
import { healthRoutes, type HealthDeps } from "./routes/health.ts";
import { tenantRoutes, type SettingsCheck } from "./routes/tenant.ts";

export const API_VERSION = "0.1.0";

export interface AppDeps {
  logger: Log;
  metrics: HttpMetrics;
  health: HealthDeps;
  tenants: Tenants;
  keys: ApiKeys;
  limits: { maxJsonBody: number; maxUploadBody: number; requestsPerMinute: number };
  /** Tenant-authenticated route groups of the planes behind the edge, mounted under /v1 (e.g. ["/knowledge", routes]). */
  planes?: Array<[path: string, routes: Hono<AppEnv>]>;
  /** Admin-authenticated route groups of the planes, mounted under /v1/admin (e.g. public adapters). */
  adminPlanes?: Array<[path: string, routes: Hono<AppEnv>]>;
  /** Admin-authenticated endpoints of the planes at /v1 itself (vLLM's /v1/load_lora_adapter, ...). */
  adminEndpoints?: Array<[path: string, routes: Hono<AppEnv>]>;
  /** Checks and normalizes tenant settings before they are stored (e.g. resolves defaultAdapter to an id). */
  checkSettings?: SettingsCheck;
  /** Unauthenticated pages at the root (the playground: GET / and /ui/*). */
  pages?: Hono<AppEnv>;
  /** The clock of the request rate limit, unix ms (default Date.now); tests move it to expire the window. */
  now?: () => number;
  /** Where requests per minute are counted (default this process's memory, on `now`). */
  rateWindow?: RateWindow;
}

/** The public HTTP API. Runtime-agnostic: Web Request/Response only, every plane behind a port. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const rateLimit = requestRateLimit(deps.limits.requestsPerMinute, deps.rateWindow ?? new SlidingWindow(deps.now));
  const asTenant = requireKey("tenant", deps.keys, deps.tenants);

  app.use("*", requestContext(deps.logger, deps.metrics));
  app.use("*", bodyLimits(deps.limits.maxJsonBody, deps.limits.maxUploadBody));

  app.route("/", healthRoutes(deps.health));
  if (deps.pages) app.route("/", deps.pages);
  app.get("/openapi.json", (c) => c.json(openApiDocument(app, { title: "Switchyard API", version: API_VERSION })));

  app.use("/v1/admin/*", requireKey("admin", deps.keys, deps.tenants));
  app.route("/v1/admin", adminRoutes(deps.tenants, deps.keys, deps.checkSettings));
  for (const [path, routes] of deps.adminPlanes ?? []) app.route(`/v1/admin${path}`, routes);
  for (const [path, routes] of deps.adminEndpoints ?? []) {
    app.use(`/v1${path}`, requireKey("admin", deps.keys, deps.tenants));
    app.route(`/v1${path}`, routes);
  }

  for (const path of ["/tenant", ...(deps.planes ?? []).map(([p]) => p)]) {
    app.use(`/v1${path}/*`, asTenant, rateLimit); // "/x/*" covers "/x" too
  }
  app.route("/v1/tenant", tenantRoutes(deps.tenants, deps.checkSettings));
  for (const [path, routes] of deps.planes ?? []) app.route(`/v1${path}`, routes);

  app.notFound(notFoundOrMethodNotAllowed(app));
  app.onError(onError);
  return app;
}
