import type { ContentfulStatusCode } from "hono/utils/http-status";
import { PlaneError, type PlaneErrorKind } from "../ports/errors.ts";

/** OpenAI's error `type` values, plus our own for statuses OpenAI does not name. */
export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "overloaded_error";

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

/**
 * An error a route throws on purpose. The error middleware turns it into the
 * OpenAI shape `{"error": {"message", "type", "param", "code"}}` with `status`.
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly type: ErrorType = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", param, code);
export const notFound = (message: string, param: string | null = null) =>
  new ApiError(404, message, "not_found_error", param, "not_found");
export const payloadTooLarge = (message: string, param: string | null = null) =>
  new ApiError(413, message, "invalid_request_error", param, "payload_too_large");
export const unsupportedMediaType = (message: string) =>
  new ApiError(415, message, "invalid_request_error", null, "unsupported_media_type");
export const tooManyRequests = (message: string, retryAfterSeconds: number, code = "rate_limit_exceeded") =>
  new ApiError(429, message, "rate_limit_error", null, code, { "Retry-After": String(Math.ceil(retryAfterSeconds)) });

/** How each port error kind reads in HTTP: status, OpenAI type, and the code when the plane gave none. */
const PLANE_ERROR_HTTP: Record<PlaneErrorKind, { status: ContentfulStatusCode; type: ErrorType; code: string | null; retryAfter?: number }> = {
  invalid_request: { status: 400, type: "invalid_request_error", code: null },
  context_length: { status: 400, type: "invalid_request_error", code: "context_length_exceeded" },
  not_found: { status: 404, type: "not_found_error", code: "not_found" },
  forbidden: { status: 403, type: "permission_error", code: "forbidden" },
  too_large: { status: 413, type: "invalid_request_error", code: "payload_too_large" },
  unsupported_media_type: { status: 415, type: "invalid_request_error", code: "unsupported_media_type" },
  overloaded: { status: 429, type: "rate_limit_error", code: "overloaded", retryAfter: 1 },
  busy: { status: 503, type: "overloaded_error", code: "busy", retryAfter: 1 },
  unavailable: { status: 503, type: "server_error", code: "unavailable", retryAfter: 5 },
  plane_unavailable: { status: 503, type: "server_error", code: "plane_unavailable" },
};

/** Codes whose OpenAI error type is not their kind's (OpenAI answers an unknown model as an invalid request). */
const OPENAI_TYPE_OF_CODE: Record<string, ErrorType> = { model_not_found: "invalid_request_error" };

/** The one place a port's error becomes an HTTP error; `param` names the field when the plane named none. */
export function planeApiError(err: PlaneError, param: string | null = null): ApiError {
  const http = PLANE_ERROR_HTTP[err.kind];
  const code = err.code ?? http.code;
  const headers: Record<string, string> = http.retryAfter ? { "Retry-After": String(http.retryAfter) } : {};
  return new ApiError(http.status, err.message, (code && OPENAI_TYPE_OF_CODE[code]) || http.type, err.param ?? param, code, headers);
}

/** Runs a port call, turning its refusals into HTTP errors that name `param` when the plane named none. */
export async function withParam<T>(param: string, run: () => Promise<T> | T): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw e instanceof PlaneError ? planeApiError(e, param) : e;
  }
}
