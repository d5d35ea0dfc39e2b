/**
 * The node's check of signed calls (hosts/node/plane-server/node-auth.ts) on the node app in process:
 * 401 in wire form, a body that is not the signed one refused before the route acts on it, the replay
 * window on the node's clock, and the bearer accepted only in migration mode.
 */
import { describe, expect, it } from "vitest";
import { bodyFacts, CONTENT_DIGEST_HEADER, signedHeaders } from "../../../clients/wire/auth.ts";
import { createNodeApp, jsonBody } from "../../../hosts/node/plane-server/node-app.ts";
import { createPrometheus } from "../../../hosts/node/prometheus.ts";

const SECRET = "node-secret-0123456789abcdef";

function app(options: { acceptBearer?: boolean; now?: () => number } = {}) {
  const acted: unknown[] = [];
  const node = createNodeApp({ secrets: [SECRET], ready: () => true, metrics: createPrometheus().http, metricsText: async () => "", ...options });
  node.post("/v1/echo", async (c) => {
    const body = await jsonBody(c);
    acted.push(body);
    return c.json({ body });
  });
  return { node, acted };
}

/** As it arrives over HTTP: a held body with the content-length fetch gives it. */
async function signedPost(body: BodyInit, signedBody: BodyInit = body, at = Date.now()): Promise<Request> {
  const facts = await bodyFacts(signedBody);
  const headers = await signedHeaders(SECRET, "POST", "/v1/echo", { "content-type": "application/json" }, facts, at);
  if (facts.length !== undefined) headers.set("content-length", String(facts.length));
  return new Request("http://node/v1/echo", { method: "POST", body, headers, ...(body instanceof ReadableStream ? { duplex: "half" } : {}) } as RequestInit);
}

async function refusal(response: Response): Promise<{ status: number; code: string }> {
  const body = (await response.json()) as { error: { kind: string; code: string } };
  expect(body.error.kind).toBe("forbidden");
  return { status: response.status, code: body.error.code };
}

describe("a node's check of signed calls", () => {
  it("passes a signed body through to the route, and refuses (401) one whose bytes are not those signed, before the route acts", async () => {
    const { node, acted } = app();
    const ok = await node.fetch(await signedPost('{"n":1}'));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ body: { n: 1 } });
    // Same length, other bytes: the signature holds (it covers the declared digest), the body does not.
    const swapped = await node.fetch(await signedPost('{"n":2}', '{"n":1}'));
    expect(await refusal(swapped)).toEqual({ status: 401, code: "body_digest_mismatch" });
    expect(acted).toEqual([{ n: 1 }]);
  });

  it("reads a streamed body unsigned (UNSIGNED-PAYLOAD), and refuses a changed digest header", async () => {
    const { node } = app();
    const stream = () => new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new TextEncoder().encode('{"n":3}')), c.close()) });
    expect(await (await node.fetch(await signedPost(stream()))).json()).toEqual({ body: { n: 3 } });
    const request = await signedPost('{"n":4}');
    request.headers.set(CONTENT_DIGEST_HEADER, "UNSIGNED-PAYLOAD");
    expect(await refusal(await node.fetch(request))).toEqual({ status: 401, code: "signature_invalid" });
  });

  it("refuses a signature outside the replay window on the node's clock", async () => {
    let now = Date.now();
    const { node } = app({ now: () => now });
    const request = await signedPost('{"n":5}', '{"n":5}', now);
    now += 301_000;
    expect(await refusal(await node.fetch(request))).toEqual({ status: 401, code: "signature_expired" });
  });

  it("accepts the bare bearer secret only in migration mode", async () => {
    const bearer = () => new Request("http://node/v1/echo", { method: "POST", body: "{}", headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" } });
    expect(await refusal(await app().node.fetch(bearer()))).toEqual({ status: 401, code: "unauthenticated" });
    expect((await app({ acceptBearer: true }).node.fetch(bearer())).status).toBe(200);
    const wrong = new Request("http://node/v1/echo", { method: "POST", body: "{}", headers: { authorization: "Bearer wrong-secret-0123456789" } });
    expect((await app({ acceptBearer: true }).node.fetch(wrong)).status).toBe(401);
  });
});
