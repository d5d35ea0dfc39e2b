/** HMAC-signed node calls (clients/wire/auth.ts): what a signature covers, the replay window and rotation. */
import { describe, expect, it } from "vitest";
import { bodyFacts, CONTENT_DIGEST_HEADER, REPLAY_WINDOW_S, sha256Hex, signedHeaders, SIGNATURE_HEADER, UNSIGNED_PAYLOAD, verifyRequest, type SignedRequest } from "../../clients/wire/auth.ts";

const NEW = "new-node-secret-0123456789";
const OLD = "old-node-secret-0123456789";
const NOW = 1_800_000_000_000;
const PATH = "/v1/tenants/acme/documents?limit=5";
const UPLOAD = "x-switchyard-upload";

/** A signed upload as the node receives it (fetch's content-length included). */
async function signed(secret: string, at = NOW, body = "hello world"): Promise<SignedRequest> {
  const facts = await bodyFacts(body);
  const headers = await signedHeaders(secret, "POST", PATH, { "content-type": "text/plain", [UPLOAD]: "%7B%7D" }, facts, at);
  headers.set("content-length", String(facts.length));
  return { method: "POST", path: `http://10.0.0.5:9101${PATH}`, headers };
}

const verify = (request: SignedRequest, secrets = [NEW, OLD], at = NOW) => verifyRequest(secrets, request, request.headers.get(SIGNATURE_HEADER), at);
const code = async (request: SignedRequest, secrets?: string[], at?: number) => {
  const verdict = await verify(request, secrets, at);
  return verdict.ok ? "ok" : verdict.code;
};
const altered = (request: SignedRequest, change: Partial<SignedRequest> & { set?: [string, string] }): SignedRequest => {
  const headers = new Headers(request.headers);
  if (change.set) headers.set(...change.set);
  return { method: change.method ?? request.method, path: change.path ?? request.path, headers };
};

describe("signed node calls", () => {
  it("verify a call signed with the first secret, and one signed with a rotated-out secret still listed", async () => {
    expect(await code(await signed(NEW))).toBe("ok");
    expect(await code(await signed(OLD))).toBe("ok");
    // Once the old secret is dropped from the node's list, its signatures stop passing.
    expect(await code(await signed(OLD), [NEW])).toBe("signature_invalid");
  });

  it("refuse a wrong secret, a missing or malformed header", async () => {
    expect(await code(await signed("wrong-secret-0123456789"))).toBe("signature_invalid");
    const request = await signed(NEW);
    const verdict = await verifyRequest([NEW], request, null, NOW);
    expect(verdict).toMatchObject({ ok: false, code: "unauthenticated" });
    const mangled = request.headers.get(SIGNATURE_HEADER)!.replace("v1=", "v2=");
    expect(await verifyRequest([NEW], request, mangled, NOW)).toMatchObject({ ok: false, code: "unauthenticated" });
  });

  it(`refuse a signature more than ${REPLAY_WINDOW_S} s old or ahead, and accept one inside the window`, async () => {
    const request = await signed(NEW);
    expect(await code(request, undefined, NOW + REPLAY_WINDOW_S * 1000)).toBe("ok");
    expect(await code(request, undefined, NOW + (REPLAY_WINDOW_S + 1) * 1000)).toBe("signature_expired");
    expect(await code(request, undefined, NOW - (REPLAY_WINDOW_S + 1) * 1000)).toBe("signature_expired");
    // The time is part of what is signed: moving it forward breaks the signature.
    const header = request.headers.get(SIGNATURE_HEADER)!.replace(/t=(\d+)/, (_, t: string) => `t=${Number(t) + 60}`);
    expect(await verifyRequest([NEW], request, header, NOW)).toMatchObject({ ok: false, code: "signature_invalid" });
  });

  it("refuse an altered path, query, method, upload header, length, type or body digest", async () => {
    const request = await signed(NEW);
    const changes: (Partial<SignedRequest> & { set?: [string, string] })[] = [
      { path: "http://10.0.0.5:9101/v1/tenants/globex/documents?limit=5" },
      { path: "http://10.0.0.5:9101/v1/tenants/acme/documents?limit=500" },
      { method: "DELETE" },
      { set: [UPLOAD, "%7B%22policy%22%3A%7B%7D%7D"] },
      { set: ["content-length", "12"] },
      { set: ["content-type", "application/json"] },
      { set: [CONTENT_DIGEST_HEADER, await sha256Hex(new TextEncoder().encode("hello world!"))] },
      { set: ["x-switchyard-added", "1"] },
    ];
    for (const change of changes) expect(await code(altered(request, change)), JSON.stringify(change)).toBe("signature_invalid");
    // Headers outside the signed set, and the host, may change (a proxy's additions).
    expect(await code(altered(request, { set: ["x-forwarded-for", "10.1.1.1"], path: `http://retrieval-0.internal${PATH}` }))).toBe("ok");
  });

  it("declare a held body's SHA-256, and a stream as UNSIGNED-PAYLOAD without reading it", async () => {
    const facts = await bodyFacts(new TextEncoder().encode("abc"));
    expect(facts).toEqual({ digest: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", length: 3, present: true });
    const stream = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array(8)), c.close()) });
    expect(await bodyFacts(stream)).toEqual({ digest: UNSIGNED_PAYLOAD, present: true });
    expect(stream.locked).toBe(false); // never read
    const headers = await signedHeaders(NEW, "POST", "/v1/tenants/acme/documents", undefined, await bodyFacts(stream));
    expect(headers.get("content-type")).toBe("application/octet-stream");
    expect(headers.get(CONTENT_DIGEST_HEADER)).toBe(UNSIGNED_PAYLOAD);
    // A GET has no body and no content-type; fetch's "content-length: 0" on a bodiless POST signs as none.
    const get = await signedHeaders(NEW, "GET", "/v1/model", undefined, await bodyFacts(undefined), NOW);
    expect(get.has("content-type")).toBe(false);
    const zero = new Headers(get);
    zero.set("content-length", "0");
    expect(await code({ method: "GET", path: "/v1/model", headers: zero })).toBe("ok");
  });
});
