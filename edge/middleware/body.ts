import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import type { AppEnv } from "../env.ts";
import { ApiError, badRequest, payloadTooLarge, unsupportedMediaType } from "../errors.ts";

const UPLOAD_TYPES = /^(multipart\/form-data|application\/(octet-stream|gzip|x-gzip|zip|x-tar|pdf))/i;

/** Caps request bodies: `uploadBytes` for file uploads, `jsonBytes` for everything else. */
export function bodyLimits(jsonBytes: number, uploadBytes: number): MiddlewareHandler<AppEnv> {
  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw payloadTooLarge(`Request body is larger than the limit of ${maxSize} bytes.`);
      },
    });
  const forJson = limit(jsonBytes);
  const forUploads = limit(uploadBytes);
  return (c, next) => (UPLOAD_TYPES.test(c.req.header("content-type") ?? "") ? forUploads : forJson)(c, next);
}

/** OpenAPI facts a middleware carries, read by edge/openapi.ts from the app's routes. */
export interface RouteDocs {
  summary?: string;
  /** Longer Markdown: what the summary leaves out (e.g. a stream's event shapes). */
  description?: string;
  /** The route can also answer with server-sent events (text/event-stream). */
  streams?: boolean;
  tags?: string[];
  body?: z.ZodType;
  query?: z.ZodType;
}
export type Documented = MiddlewareHandler & { docs: RouteDocs };

/** Documents a route: `app.get("/x", describe({ summary: "..." }), handler)`. */
export function describe(docs: RouteDocs): Documented {
  const middleware: MiddlewareHandler = (_c, next) => next();
  return Object.assign(middleware, { docs });
}

/**
 * Validates a JSON body against `schema`: 415 unless the body is JSON, 400 naming the offending field.
 * The parsed value is read with `c.req.valid("json")`.
 */
export function jsonBody<T extends z.ZodType>(schema: T) {
  const middleware: MiddlewareHandler<AppEnv, string, { in: { json: z.input<T> }; out: { json: z.output<T> } }> = async (c, next) => {
    const parsed = schema.safeParse(await readJson(c));
    if (!parsed.success) throw schemaError(parsed.error);
    c.req.addValidatedData("json", parsed.data as object);
    await next();
  };
  return Object.assign(middleware, { docs: { body: schema } satisfies RouteDocs });
}

/** Validates the query string against `schema`; read with `c.req.valid("query")`. */
export function queryParams<T extends z.ZodType>(schema: T) {
  const middleware: MiddlewareHandler<AppEnv, string, { in: { query: z.input<T> }; out: { query: z.output<T> } }> = async (c, next) => {
    const parsed = schema.safeParse(c.req.query());
    if (!parsed.success) throw schemaError(parsed.error);
    c.req.addValidatedData("query", parsed.data as object);
    await next();
  };
  return Object.assign(middleware, { docs: { query: schema } satisfies RouteDocs });
}

export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw unsupportedMediaType(`Expected Content-Type application/json, got ${type ? JSON.stringify(type) : "none"}.`);
  }
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`We could not parse the JSON body of your request: ${(err as Error).message}.`, null, "invalid_json");
  }
}

export function schemaError(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  const param = issue.path.length > 0 ? issue.path.map(String).join(".") : null;
  const where = param ? `'${param}'` : "the request body";
  return badRequest(`Invalid value for ${where}: ${issue.message}`, param, "invalid_value");
}
