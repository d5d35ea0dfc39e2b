import { Hono } from "hono";
import type { AppEnv } from "../../edge/env.ts";
import { ApiError } from "../../edge/errors.ts";
import { onError } from "../../edge/middleware/errors.ts";

/** One route group behind a stand-in for the auth middleware (the tenant named by `x-tenant`) and the edge's error renderer. */
export function tenantApp(path: string, routes: Hono<AppEnv>): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(async (c, next) => {
    const id = c.req.header("x-tenant");
    if (!id) throw new ApiError(401, "no tenant", "authentication_error");
    c.set("tenant", { id, name: id, disabled: false, settings: {}, limits: {}, createdAt: 0 });
    await next();
  });
  app.onError(onError);
  app.route(path, routes);
  return app;
}
