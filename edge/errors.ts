import type { ContentfulStatusCode } from "hono/utils/http-status";

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
