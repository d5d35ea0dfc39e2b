/** Errors the engine raises before or instead of generating: the inference port's kinds, with the engine's details. */
import { ContextLengthError, PlaneError } from "../../ports/errors.ts";

/** The request queue is full. */
export class EngineOverloadedError extends PlaneError {
  override readonly name = "EngineOverloadedError";
  constructor(readonly queued: number, readonly limit: number) {
    super("overloaded", `The model is overloaded: inference engine overloaded: ${queued} requests already queued (limit ${limit}); retry later.`, { code: "engine_overloaded" });
  }
}

/** Prompt plus requested completion do not fit in the model's context window. */
export class ContextOverflowError extends ContextLengthError {
  override readonly name = "ContextOverflowError";
  constructor(promptTokens: number, maxTokens: number, contextLength: number) {
    super(promptTokens, maxTokens, contextLength, { param: "messages" });
  }
}

/** The request itself is malformed (empty prompt, token ids out of range, bad max tokens). */
export class InvalidGenerateRequestError extends PlaneError {
  override readonly name = "InvalidGenerateRequestError";
  constructor(message: string) {
    super("invalid_request", message, { code: "invalid_generation_request", param: "messages" });
  }
}

/** The engine was closed while the request was queued or running. */
export class EngineClosedError extends PlaneError {
  override readonly name = "EngineClosedError";
  constructor() {
    super("unavailable", "inference engine is shutting down", { code: "inference_unavailable" });
  }
}

/**
 * The model produced NaN or infinite logits for one sequence (a broken adapter or weights). That
 * sequence ends with this error (a 500); the cache's isolation keeps every other sequence intact.
 */
export class NonFiniteLogitsError extends Error {
  override readonly name = "NonFiniteLogitsError";
  constructor(readonly position: number) {
    super(`the model produced non-finite logits at completion token ${position}; the adapter or model weights are broken`);
  }
}
