/**
 * The node's side of clients/wire/auth.ts, as Hono middleware on /v1/*: a call must carry a valid
 * signature by one of the node's secrets within the replay window, else 401 in wire form (codes
 * `unauthenticated`, `signature_expired`, `signature_invalid`). With `acceptBearer` (migration only)
 * the old `Authorization: Bearer <secret>` passes too.
 *
 * A signed call that declares its body's SHA-256 gets its body replaced by one that checks it: the
 * bytes pass through as the route reads them, and the stream errors with NodeAuthError (401,
 * `body_digest_mismatch`) at its end if they are not what was signed, so nothing is acted on (routes
 * read their whole body before acting). Web Crypto has no incremental digest, so the check keeps the
 * chunks until the end: bounded by the route's own cap, which stops reading past it.
 */
import type { MiddlewareHandler } from "hono";
import { PlaneError } from "../../../ports/errors.ts";
import { CONTENT_DIGEST_HEADER, isAuthorized, sha256Hex, SIGNATURE_HEADER, UNSIGNED_PAYLOAD, verifyRequest } from "../../../clients/wire/auth.ts";

export interface NodeAuthOptions {
  secrets: readonly string[];
  /** Also accept `Authorization: Bearer <secret>` (SWITCHYARD_NODE_ACCEPT_BEARER; for a migration only). */
  acceptBearer?: boolean;
  /** Unix ms (tests move it). */
  now?: () => number;
}

/** A call the node refuses to authenticate: rendered as 401. */
export class NodeAuthError extends PlaneError {
  constructor(code: string, message: string) {
    super("forbidden", message, { code });
  }
}

export function nodeAuth(options: NodeAuthOptions): MiddlewareHandler {
  const now = options.now ?? Date.now;
  return async (c, next) => {
    const request = c.req.raw;
    const signature = request.headers.get(SIGNATURE_HEADER);
    if (signature === null && options.acceptBearer && isAuthorized(request.headers.get("authorization"), options.secrets)) return next();
    const verdict = await verifyRequest(options.secrets, { method: request.method, path: request.url, headers: request.headers }, signature, now());
    if (!verdict.ok) throw new NodeAuthError(verdict.code, verdict.message);
    const digest = request.headers.get(CONTENT_DIGEST_HEADER);
    if (request.body && digest !== null && digest !== UNSIGNED_PAYLOAD) {
      c.req.raw = new Request(request, { body: request.body.pipeThrough(digestCheck(digest.toLowerCase())), duplex: "half" } as RequestInit);
    }
    return next();
  };
}

/** Passes the bytes through and errors at the end unless their SHA-256 is `expected`. */
function digestCheck(expected: string): TransformStream<Uint8Array, Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  return new TransformStream({
    transform(chunk, controller) {
      chunks.push(chunk);
      size += chunk.byteLength;
      controller.enqueue(chunk);
    },
    async flush(controller) {
      const whole = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) (whole.set(chunk, at), (at += chunk.byteLength));
      if ((await sha256Hex(whole)) !== expected) {
        controller.error(new NodeAuthError("body_digest_mismatch", "The call's body is not the one its signature declares."));
      }
    },
  });
}
