/**
 * Edge-to-node authentication: every call is signed with HMAC-SHA256 (Web Crypto alone, so the same
 * code signs on Node and in workerd, and verifies on the node). The secret itself never travels.
 *
 *   Switchyard-Node-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, canonical request)>
 *
 * The canonical request is these lines joined by "\n":
 *   SWITCHYARD-NODE-HMAC-SHA256
 *   <t>
 *   <METHOD>
 *   <path and query, as the WHATWG URL parser normalises them>
 *   content-length:<value, "" for none or 0>
 *   content-type:<value>
 *   <name>:<value> for every `x-switchyard-*` header, sorted by name (the upload's fields and policy,
 *     and `x-switchyard-content-sha256`: the body's hex SHA-256, or UNSIGNED-PAYLOAD)
 *
 * - Body: a client that holds the body (a string, bytes, a Blob) declares its SHA-256, and the node checks
 *   the bytes against it as it reads them (hosts/node/plane-server/node-auth.ts). A streamed body is never
 *   buffered to be signed: it goes as UNSIGNED-PAYLOAD, and then only its method, path, length, type and
 *   metadata headers are signed, not its bytes (TLS covers those). A route that never reads its body
 *   (reindex) never checks it, and needs not.
 * - Not signed: any other header (accept, user-agent, a proxy's forwarding headers), the host and port,
 *   and, for UNSIGNED-PAYLOAD, the bytes.
 * - Replay: a node refuses a signature more than REPLAY_WINDOW_S from its clock either way. Inside the
 *   window the very same request (same path, same body) could be sent again by whoever captured it,
 *   which needs the plain-HTTP network path; nodes keep no nonce store.
 * - Rotation: SWITCHYARD_NODE_SECRET is a comma-separated list. A node accepts a signature by any of them,
 *   a client signs with the first, so a secret is rotated by putting the new one first everywhere (nodes
 *   before edges), then dropping the old.
 * - Migration from the bearer: signing replaces `Authorization: Bearer <secret>`. A node accepts the
 *   bearer only with SWITCHYARD_NODE_ACCEPT_BEARER=1 (upgrade the nodes with it, then the edges, which
 *   only sign, then turn it off); `isAuthorized` is that bearer check.
 */

export const MIN_SECRET_LENGTH = 16;
export const SIGNATURE_HEADER = "switchyard-node-signature";
export const CONTENT_DIGEST_HEADER = "x-switchyard-content-sha256";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** How far a signature's time may be from the node's clock, in seconds, either way. */
export const REPLAY_WINDOW_S = 300;

const SCHEME = "SWITCHYARD-NODE-HMAC-SHA256";
const encoder = new TextEncoder();

/** The secrets of a SWITCHYARD_NODE_SECRET value, in order (blank entries dropped). */
export function parseSecrets(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** What of a request the signature covers (its headers as sent; a fetch-computed content-length included). */
export interface SignedRequest {
  method: string;
  /** Path and query (`/v1/tenants/acme/documents?limit=5`), or a whole URL (only its path and query count). */
  path: string;
  headers: Headers;
}

export type Verdict = { ok: true } | { ok: false; code: "unauthenticated" | "signature_expired" | "signature_invalid"; message: string };

export function canonicalRequest(t: number, request: SignedRequest): string {
  const url = new URL(request.path, "http://node");
  const length = request.headers.get("content-length") ?? "";
  const lines = [SCHEME, String(t), request.method.toUpperCase(), url.pathname + url.search, `content-length:${length === "0" ? "" : length}`, `content-type:${request.headers.get("content-type") ?? ""}`];
  const ours = [...request.headers.entries()].filter(([name]) => name.startsWith("x-switchyard-")).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, value] of ours) lines.push(`${name}:${value.trim()}`);
  return lines.join("\n");
}

/** The Switchyard-Node-Signature value for the request, signed with `secret` at `nowMs`. */
export async function signRequest(secret: string, request: SignedRequest, nowMs = Date.now()): Promise<string> {
  const t = Math.floor(nowMs / 1000);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(canonicalRequest(t, request)));
  return `t=${t},v1=${toHex(new Uint8Array(mac))}`;
}

/** Whether `header` signs the request with one of `secrets` within the replay window (the HMAC compared in constant time). */
export async function verifyRequest(secrets: readonly string[], request: SignedRequest, header: string | null | undefined, nowMs = Date.now()): Promise<Verdict> {
  const parsed = parseSignature(header);
  if (!parsed) return { ok: false, code: "unauthenticated", message: `This node needs a signed call (${SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256>).` };
  if (Math.abs(nowMs / 1000 - parsed.t) > REPLAY_WINDOW_S) {
    return { ok: false, code: "signature_expired", message: `The call's signature time is more than ${REPLAY_WINDOW_S} s from this node's clock.` };
  }
  const data = encoder.encode(canonicalRequest(parsed.t, request));
  for (const secret of secrets) {
    if (await crypto.subtle.verify("HMAC", await hmacKey(secret), parsed.mac, data)) return { ok: true };
  }
  return { ok: false, code: "signature_invalid", message: "The call's signature matches none of this node's secrets (or the call was altered)." };
}

/** A body's declared digest and length, when the caller holds it whole; `undefined` fields for a stream. */
export interface BodyFacts {
  /** Hex SHA-256, or UNSIGNED_PAYLOAD. */
  digest: string;
  /** The bytes fetch will send as content-length (none for a stream). */
  length?: number;
  /** Whether there is a body at all (fetch gives one a content-type unless the caller does). */
  present: boolean;
}

/** Digests a body the caller holds (never reads a stream: that goes unsigned). */
export async function bodyFacts(body: BodyInit | null | undefined): Promise<BodyFacts> {
  if (body === undefined || body === null) return { digest: await sha256Hex(new Uint8Array(0)), length: 0, present: false };
  if (body instanceof ReadableStream) return { digest: UNSIGNED_PAYLOAD, present: true };
  const bytes = await bodyBytes(body);
  return { digest: await sha256Hex(bytes), length: bytes.byteLength, present: true };
}

/**
 * The headers to send: the caller's, a content-type when there is a body (so fetch adds none unsigned),
 * the body digest, and the signature. `facts` comes from `bodyFacts` (computed once for retried calls).
 */
export async function signedHeaders(secret: string, method: string, path: string, headers: HeadersInit | undefined, facts: BodyFacts, nowMs = Date.now()): Promise<Headers> {
  const sent = new Headers(headers);
  if (facts.present && !sent.has("content-type")) sent.set("content-type", "application/octet-stream");
  sent.set(CONTENT_DIGEST_HEADER, facts.digest);
  const covered = new Headers(sent);
  if (facts.length !== undefined && !covered.has("content-length")) covered.set("content-length", String(facts.length));
  sent.set(SIGNATURE_HEADER, await signRequest(secret, { method, path, headers: covered }, nowMs));
  return sent;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** The migration path's bearer check: whether an Authorization header carries one of `secrets` (constant time per secret). */
export function isAuthorized(header: string | undefined | null, secrets: readonly string[]): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? "");
  if (!match) return false;
  let ok = false;
  for (const secret of secrets) ok = constantTimeEqual(match[1]!, secret) || ok;
  return ok;
}

async function bodyBytes(body: BodyInit): Promise<Uint8Array> {
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof Blob) return new Uint8Array(await body.arrayBuffer());
  throw new TypeError("A signed node call's body is a string, bytes, a Blob or a ReadableStream.");
}

function parseSignature(header: string | null | undefined): { t: number; mac: Uint8Array } | undefined {
  const match = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec((header ?? "").trim());
  if (!match) return undefined;
  return { t: Number(match[1]), mac: fromHex(match[2]!) };
}

// Imported once per secret: a node checks every call against a handful of secrets.
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, key);
  }
  return key;
}

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
