import type { Context } from "hono";
import type { AppEnv } from "../env.ts";
import { toApiError } from "../middleware/errors.ts";

export interface SseOptions {
  /** Ends a stream whose client has not taken the last event for this long (0 = never). */
  stallTimeoutMs: number;
  /** Called when the stream ends before its source did: the client went away or stalled. */
  onCancel: () => void;
  /** Called when the client stalled past the timeout, just before the connection is closed. */
  onStall?: () => void;
  /** The data of the last event when the source throws. */
  onError: (err: unknown) => string;
}

/** What @hono/node-server puts in `c.env`; absent on Workers and in `app.request`. */
interface NodeBindings {
  outgoing?: { destroy(error?: Error): void };
}

const encoder = new TextEncoder();

/**
 * A server-sent events response that pulls each event's `data` from `source` only when the client
 * has taken the previous one: the body is a pull-based ReadableStream with no queue (highWaterMark
 * 0), and Node's adapter reads it only while the socket drains. A client that stops reading so
 * stops the producer; one that stays stalled past `stallTimeoutMs` has its stream cancelled and its
 * connection closed.
 */
export function sseResponse(c: Context, source: AsyncIterable<string>, options: SseOptions): Response {
  const events = source[Symbol.asyncIterator]();
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  let finished = false;
  const stopStallTimer = () => {
    if (stallTimer !== undefined) clearTimeout(stallTimer);
  };
  const abandon = () => {
    stopStallTimer();
    if (finished) return;
    finished = true;
    options.onCancel();
    void events.return?.().catch(() => undefined);
  };
  const stalled = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    options.onStall?.();
    abandon();
    // The bytes already queued for this client could only leave if it read them: drop the connection.
    const outgoing = (c.env as NodeBindings | undefined)?.outgoing;
    if (outgoing) outgoing.destroy();
    else controller.error(new Error(`client stalled: no event taken for ${options.stallTimeoutMs} ms`));
  };
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        stopStallTimer();
        let data: string;
        try {
          const next = await events.next();
          if (next.done) {
            finished = true;
            return controller.close();
          }
          data = next.value;
        } catch (err) {
          finished = true;
          controller.enqueue(frame(options.onError(err)));
          return controller.close();
        }
        controller.enqueue(frame(data));
        if (options.stallTimeoutMs > 0) stallTimer = setTimeout(() => stalled(controller), options.stallTimeoutMs);
      },
      cancel: abandon,
    },
    { highWaterMark: 0 },
  );
  c.header("Content-Type", "text/event-stream");
  c.header("Cache-Control", "no-cache");
  c.header("Connection", "keep-alive");
  return c.newResponse(body);
}

function frame(data: string): Uint8Array {
  return encoder.encode(`${data.split(/\r\n|\r|\n/).map((line) => `data: ${line}`).join("\n")}\n\n`);
}

/** Sends one JSON payload as an SSE `data:` event. */
export type Send = (payload: unknown) => Promise<void>;

export interface EventWriter<T> {
  /** Writes what comes before the first event (e.g. chat's role chunk). */
  open?(send: Send): Promise<void>;
  /** Writes the payloads of one event. */
  event(event: T, send: Send): Promise<void>;
}

/**
 * Server-sent events of JSON payloads, ending with `data: [DONE]`, with `sseResponse`'s backpressure:
 * a client that goes away or stalls past the timeout cancels the generation. The first event is
 * awaited before the stream opens, so errors raised before any token (a full queue, an adapter that
 * fails to load) still reach the client as a JSON error with its status. Used by chat, completions and compare.
 */
export async function streamEvents<T>(
  c: Context<AppEnv>,
  start: (signal: AbortSignal) => AsyncIterable<T>,
  writer: EventWriter<T>,
  stallTimeoutMs: number,
): Promise<Response> {
  const cancel = new AbortController();
  const events = start(AbortSignal.any([c.req.raw.signal, cancel.signal]))[Symbol.asyncIterator]();
  let next = await events.next();
  async function* payloads(): AsyncGenerator<string> {
    const written: string[] = [];
    const send: Send = async (payload) => void written.push(JSON.stringify(payload));
    await writer.open?.(send);
    yield* written.splice(0);
    for (; !next.done; next = await events.next()) {
      await writer.event(next.value, send);
      yield* written.splice(0);
    }
    yield "[DONE]";
  }
  return sseResponse(c, payloads(), {
    stallTimeoutMs,
    onCancel: () => cancel.abort(),
    onStall: () => c.get("logger").warn({ stallTimeoutMs }, "stream client stalled: generation cancelled"),
    onError: (err) => {
      c.get("logger").error({ err }, "stream failed");
      return JSON.stringify(toApiError(err).toBody());
    },
  });
}
