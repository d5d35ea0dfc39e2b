import type { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "./env.ts";
import type { RouteDocs } from "./middleware/body.ts";

type Operation = Record<string, unknown>;

const errorResponse = {
  description: "Error, in OpenAI's shape",
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
};

const responses = { "200": { description: "Success" }, "4XX": errorResponse, "5XX": errorResponse };

const streamingSuccess = {
  description: "Success: JSON, or with `stream: true` server-sent events (see the description)",
  content: { "application/json": {}, "text/event-stream": { schema: { type: "string" } } },
};

/**
 * Builds the OpenAPI 3.1 document from the app's own routes: each route's `describe(...)`,
 * `jsonBody(schema)` and `queryParams(schema)` middleware carry its summary and schemas.
 */
export function openApiDocument(app: Hono<AppEnv>, info: { title: string; version: string }) {
  const paths: Record<string, Record<string, Operation>> = {};
  for (const route of app.routes) {
    const docs = (route.handler as { docs?: RouteDocs }).docs;
    if (!docs || route.method === "ALL") continue;
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const method = route.method.toLowerCase();
    const operation = ((paths[path] ??= {})[method] ??= baseOperation(path));
    const { parameters = [], ...parts } = documentParts(docs);
    Object.assign(operation, parts);
    if (parameters.length > 0) operation.parameters = [...((operation.parameters as unknown[]) ?? []), ...parameters];
  }
  return {
    openapi: "3.1.0",
    info,
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              properties: {
                message: { type: "string" },
                type: { type: "string" },
                param: { type: ["string", "null"] },
                code: { type: ["string", "null"] },
              },
            },
          },
        },
      },
    },
  };
}

function baseOperation(path: string): Operation {
  const parameters = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: "path", required: true, schema: { type: "string" } }));
  return {
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(path.startsWith("/v1/") ? { security: [{ bearer: [] }] } : {}),
    responses,
  };
}

function documentParts(docs: RouteDocs): Operation & { parameters?: unknown[] } {
  const part: Operation & { parameters?: unknown[] } = {};
  if (docs.summary) part.summary = docs.summary;
  if (docs.description) part.description = docs.description;
  if (docs.streams) part.responses = { ...responses, "200": streamingSuccess };
  if (docs.tags) part.tags = docs.tags;
  if (docs.body) {
    part.requestBody = { required: true, content: { "application/json": { schema: jsonSchema(docs.body) } } };
  }
  if (docs.query) {
    const schema = jsonSchema(docs.query) as { properties?: Record<string, unknown>; required?: string[] };
    part.parameters = Object.entries(schema.properties ?? {}).map(([name, s]) => ({
      name,
      in: "query",
      required: schema.required?.includes(name) ?? false,
      schema: s,
    }));
  }
  return part;
}

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}
