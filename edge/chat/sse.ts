import type { Context } from "hono";

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
  const abandon = () => {
    clearTimeout(stallTimer);
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
        clearTimeout(stallTimer);
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
