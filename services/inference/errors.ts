/** Errors the engine raises before or instead of generating: the Inference port's kinds, with the engine's details. */
import { ContextLengthError, InferenceOverloadedError, InferenceRequestError, InferenceUnavailableError } from "../../edge/ports.ts";

/** The request queue is full. */
export class EngineOverloadedError extends InferenceOverloadedError {
  override readonly name = "EngineOverloadedError";
  constructor(readonly queued: number, readonly limit: number) {
    super(`inference engine overloaded: ${queued} requests already queued (limit ${limit}); retry later`);
  }
}

/** Prompt plus requested completion do not fit in the model's context window. */
export class ContextOverflowError extends ContextLengthError {
  override readonly name = "ContextOverflowError";
}

/** The request itself is malformed (empty prompt, token ids out of range, bad max tokens). */
export class InvalidGenerateRequestError extends InferenceRequestError {
  override readonly name = "InvalidGenerateRequestError";
}

/** The engine was closed while the request was queued or running. */
export class EngineClosedError extends InferenceUnavailableError {
  override readonly name = "EngineClosedError";
  constructor() {
    super("inference engine is shutting down");
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
