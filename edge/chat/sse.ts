import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { AppEnv } from "../env.ts";
import { toApiError } from "../middleware/errors.ts";

/** Sends one JSON payload as an SSE `data:` event. */
export type Send = (payload: unknown) => Promise<void>;

export interface EventWriter<T> {
  /** Writes what comes before the first event (e.g. chat's role chunk). */
  open?(send: Send): Promise<void>;
  /** Writes the payloads of one event. */
  event(event: T, send: Send): Promise<void>;
}

/**
 * Server-sent events of JSON payloads, ending with `data: [DONE]`; a client that goes away cancels
 * the generation. The first event is awaited before the stream opens, so errors raised before any
 * token (a full queue, an adapter that fails to load) still reach the client as a JSON error with
 * its status. Used by chat and completions alike.
 */
export async function streamEvents<T>(c: Context<AppEnv>, start: (signal: AbortSignal) => AsyncIterable<T>, writer: EventWriter<T>): Promise<Response> {
  const cancel = new AbortController();
  const events = start(AbortSignal.any([c.req.raw.signal, cancel.signal]))[Symbol.asyncIterator]();
  let next = await events.next();
  return streamSSE(
    c,
    async (stream) => {
      stream.onAbort(() => cancel.abort());
      const send: Send = (payload) => stream.writeSSE({ data: JSON.stringify(payload) });
      await writer.open?.(send);
      for (; !next.done; next = await events.next()) await writer.event(next.value, send);
      await stream.writeSSE({ data: "[DONE]" });
    },
    async (err, stream) => {
      c.get("logger").error({ err }, "stream failed");
      const error = toApiError(err);
      await stream.writeSSE({ data: JSON.stringify(error.toBody()) });
    },
  );
}
