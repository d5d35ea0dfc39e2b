/** Errors the engine raises before or instead of generating; the edge maps them to HTTP errors. */

/** The request queue is full: try again later (HTTP 503/429). */
export class EngineOverloadedError extends Error {
  override readonly name = "EngineOverloadedError";
  constructor(readonly queued: number, readonly limit: number) {
    super(`inference engine overloaded: ${queued} requests already queued (limit ${limit}); retry later`);
  }
}

/** Prompt plus requested completion do not fit in the model's context window (HTTP 400). */
export class ContextOverflowError extends Error {
  override readonly name = "ContextOverflowError";
  constructor(
    readonly promptTokens: number,
    readonly maxTokens: number,
    readonly contextLength: number,
  ) {
    super(
      `this model's context window is ${contextLength} tokens, but the request needs ${promptTokens + maxTokens} ` +
        `(${promptTokens} in the prompt + ${maxTokens} max tokens to generate); shorten the prompt or lower max_tokens`,
    );
  }
}

/** The request itself is malformed (empty prompt, token ids out of range, bad max tokens). */
export class InvalidGenerateRequestError extends Error {
  override readonly name = "InvalidGenerateRequestError";
}

/** The engine was closed while the request was queued or running. */
export class EngineClosedError extends Error {
  override readonly name = "EngineClosedError";
  constructor() {
    super("inference engine is shutting down");
  }
}
