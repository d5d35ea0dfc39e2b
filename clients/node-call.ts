/**
 * One call from the edge to a plane node, over fetch alone (runs on Node and Workers): signed with the
 * node secret (wire/auth.ts: each attempt signed afresh, a held body's digest computed once), a timeout
 * per attempt, and bounded retries with backoff for idempotent calls only, on a failure that did nothing
 * (no connection, a timeout, 502/503/504 or a plane error of kind `unavailable`/`busy`). A non-2xx answer
 * becomes the PlaneError it carries (wire/errors.ts); a 401 (the node refused our signature) becomes
 * `unavailable`, since the caller did nothing wrong.
 */
import { PlaneError } from "../ports/errors.ts";
import { bodyFacts, signedHeaders, type BodyFacts } from "./wire/auth.ts";
import { fromWireError } from "./wire/errors.ts";

export interface NodeClientOptions {
  /** The node's base URL (`http://10.0.0.5:9101`). */
  url: string;
  /** The secret calls are signed with (the first of SWITCHYARD_NODE_SECRET). */
  secret: string;
  /** Per attempt, until the response head arrives; default 30 s. */
  timeoutMs?: number;
  /** Extra attempts of an idempotent call; default 2. */
  retries?: number;
  /** First backoff, doubled per retry; default 100 ms. */
  backoffMs?: number;
  fetch?: typeof fetch;
}

export interface CallInit {
  method: "GET" | "POST" | "DELETE";
  path: string;
  /** A string, bytes or Blob (its SHA-256 is signed), or a ReadableStream (sent unbuffered, its bytes unsigned). */
  body?: BodyInit;
  headers?: Record<string, string>;
  /** Safe to send again after a failure that did nothing. */
  idempotent: boolean;
  /** The caller's signal: aborting it aborts the request (the node sees the connection close). */
  signal?: AbortSignal;
  /** This call's per-attempt timeout, instead of the client's. */
  timeoutMs?: number;
}

const RETRY_STATUS = new Set([502, 503, 504]);

export class NodeClient {
  private readonly base: string;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: NodeClientOptions) {
    this.base = options.url.replace(/\/+$/, "");
    this.fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The 2xx response; rejects with the node's PlaneError, or `unavailable` when the node cannot be reached. */
  async call(init: CallInit): Promise<Response> {
    const attempts = init.idempotent ? 1 + (this.options.retries ?? 2) : 1;
    const facts = await bodyFacts(init.body);
    let last: PlaneError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep((this.options.backoffMs ?? 100) * 2 ** (attempt - 1), init.signal);
      const outcome = await this.attempt(init, facts);
      if ("response" in outcome) return outcome.response;
      last = outcome.error;
      if (!outcome.retryable) break;
    }
    throw last!;
  }

  // Tagged, not `instanceof Response`: @hono/node-server replaces the global Response with its own class.
  private async attempt(init: CallInit, facts: BodyFacts): Promise<{ response: Response } | { error: PlaneError; retryable: boolean }> {
    const headers = await signedHeaders(this.options.secret, init.method, init.path, init.headers, facts);
    const timeout = AbortSignal.timeout(init.timeoutMs ?? this.options.timeoutMs ?? 30_000);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await this.fetch(`${this.base}${init.path}`, {
        method: init.method,
        body: init.body,
        headers,
        signal,
        // A stream body needs half duplex on Node's fetch; Workers ignore it.
        ...(init.body instanceof ReadableStream ? { duplex: "half" } : {}),
      } as RequestInit);
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      const what = timeout.aborted ? "did not answer in time" : "cannot be reached";
      return { error: new PlaneError("unavailable", `The plane node at ${this.base} ${what}.`, { code: "node_unreachable" }), retryable: true };
    }
    if (response.ok) return { response };
    // The caller did nothing wrong: a refused secret is this deployment's misconfiguration.
    if (response.status === 401) {
      const refused = fromWireError(await response.json().catch(() => undefined), 401).code ?? "unauthenticated";
      return { error: new PlaneError("unavailable", `The plane node at ${this.base} refused the call's signature (${refused}).`, { code: "node_unauthorized" }), retryable: false };
    }
    const error = fromWireError(await response.json().catch(() => undefined), response.status);
    const retryable = RETRY_STATUS.has(response.status) && (error.kind === "unavailable" || error.kind === "busy");
    return { error, retryable };
  }

  async json<T>(init: CallInit): Promise<T> {
    return (await (await this.call(init)).json()) as T;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => (clearTimeout(timer), reject(signal!.reason));
    const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
