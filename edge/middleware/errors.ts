import type { Context, ErrorHandler, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { PlaneError } from "../../ports/errors.ts";
import type { AppEnv } from "../env.ts";
import { ApiError, planeApiError } from "../errors.ts";

/** Renders any thrown error as OpenAI-shaped JSON; unknown errors become a 500 without internals. */
export const onError: ErrorHandler<AppEnv> = (err, c) => {
  const apiError = toApiError(err);
  if (apiError.status >= 500) c.get("logger")?.error({ err }, "unhandled error");
  return respond(c, apiError);
};

export function respond(c: Context, error: ApiError): Response {
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json(error.toBody(), error.status);
}

export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof PlaneError) return planeApiError(err);
  if (err instanceof HTTPException && err.status < 500) {
    return new ApiError(err.status as 400, err.message || "Bad request", "invalid_request_error");
  }
  return new ApiError(500, "The server had an error while processing your request.", "server_error", null, "internal_error");
}

/** 404 for unknown paths, 405 (with Allow) for known paths asked with another method. */
export function notFoundOrMethodNotAllowed(app: Hono<AppEnv>) {
  return (c: Context<AppEnv>) => {
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length > 0) {
      c.header("Allow", allowed.join(", "));
      return respond(c, new ApiError(405, `Method ${c.req.method} is not allowed on ${c.req.path}.`, "invalid_request_error", null, "method_not_allowed"));
    }
    return respond(c, new ApiError(404, `No route for ${c.req.method} ${c.req.path}.`, "not_found_error", null, "unknown_route"));
  };
}

function allowedMethods(app: Hono<AppEnv>, path: string): string[] {
  const methods = new Set<string>();
  for (const route of app.routes) {
    if (route.method !== "ALL" && !route.path.includes("*") && patternToRegExp(route.path).test(path)) methods.add(route.method);
  }
  return [...methods].sort();
}

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/:\w+/g, "[^/]+");
  return new RegExp(`^${escaped}/?$`);
}
