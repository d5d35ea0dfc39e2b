/**
 * The one error type every port raises. A plane says *what kind* of refusal it is; the edge alone
 * decides what that means in HTTP (edge/http-errors.ts). Plain data (kind, message, code, param,
 * details), so an HTTP client of a port rebuilds the same error from a response body.
 */
export type PlaneErrorKind =
  /** The request cannot run as given: 400. */
  | "invalid_request"
  /** Prompt plus completion do not fit the model's context window: 400 (`details` has the counts). */
  | "context_length"
  | "not_found"
  | "forbidden"
  | "too_large"
  | "unsupported_media_type"
  /** The plane's queue is full; retry soon: 429. */
  | "overloaded"
  /** A bounded resource (the adapter cache) is busy; retry soon: 503. */
  | "busy"
  /** The plane is shutting down or unreachable: 503. */
  | "unavailable"
  /** This deployment runs no such plane: 503. */
  | "plane_unavailable";

export interface PlaneErrorInit {
  /** A stable machine-readable reason (`shape_mismatch`, `engine_overloaded`); default per kind at the edge. */
  code?: string;
  /** The request field at fault. */
  param?: string;
  details?: Record<string, number | string>;
}

export class PlaneError extends Error {
  readonly code: string | null;
  readonly param: string | null;
  readonly details: Record<string, number | string>;

  constructor(readonly kind: PlaneErrorKind, message: string, init: PlaneErrorInit = {}) {
    super(message);
    this.name = "PlaneError";
    this.code = init.code ?? null;
    this.param = init.param ?? null;
    this.details = init.details ?? {};
  }
}

/** Prompt + max tokens exceed the context window; thrown before any work. `details` repeats the counts for HTTP clients. */
export class ContextLengthError extends PlaneError {
  constructor(readonly promptTokens: number, readonly maxTokens: number, readonly contextLength: number, init: Omit<PlaneErrorInit, "details"> = {}) {
    super(
      "context_length",
      `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + maxTokens} tokens ` +
        `(${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      { code: "context_length_exceeded", ...init, details: { promptTokens, maxTokens, contextLength } },
    );
  }
}

/** The OpenAI `model` field names no model this tenant may use. */
export function modelNotFound(model: string): PlaneError {
  return new PlaneError("not_found", `The model '${model}' does not exist or you do not have access to it.`, { code: "model_not_found", param: "model" });
}

/** What a host answers for a port it does not run (the Workers edge before the scale-out). */
export function planeUnavailable(plane: string): PlaneError {
  return new PlaneError("plane_unavailable", `The ${plane} plane is not available in this deployment.`, { code: "plane_unavailable" });
}
