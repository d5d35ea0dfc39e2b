import { Hono } from "hono";
import { planeUnavailable } from "../../ports/errors.ts";
import type { AppEnv } from "../env.ts";

/**
 * The routes of a plane this deployment does not run: every method and path under the mount answers
 * 503 `plane_unavailable` (OpenAI-shaped, through the kind-to-HTTP map), behind the same auth as the
 * real routes would be.
 */
export function unavailableRoutes(plane: string): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.all("*", () => {
    throw planeUnavailable(plane);
  });
  return app;
}
