/**
 * `switchyard serve inference|retrieval` as real processes on loopback: signed calls (none, bearer,
 * wrong secret, rotated; the signing itself is unit-tested in tests/clients/node-auth.test.ts), health, readiness and metrics, cancellation across HTTP (the engine's sequence ends when
 * the client aborts), a typed error crossing intact, and the client's retries (idempotent calls only).
 */
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpInference } from "../../../clients/inference.ts";
import { HttpKnowledge } from "../../../clients/knowledge.ts";
import { ContextLengthError, PlaneError } from "../../../ports/errors.ts";
import type { SamplingParams } from "../../../ports/inference.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../../helpers/plane-node.ts";

const OLD_SECRET = "old-node-secret-0123456789";
const params = (maxTokens: number): SamplingParams => ({ maxTokens, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] });

/** A gauge or counter's value in a Prometheus text page. */
function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(" ")[1]);
}

async function caught(promise: Promise<unknown>): Promise<PlaneError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof PlaneError)) throw new Error(`expected a PlaneError, got ${String(err)}`);
  return err;
}

describe("plane nodes over HTTP", () => {
  let inference: PlaneNodeChild;
  let retrieval: PlaneNodeChild;
  beforeAll(async () => {
    // Rotation: the nodes accept the new secret (first) and the old one.
    const env = { SWITCHYARD_NODE_SECRET: `${NODE_SECRET},${OLD_SECRET}` };
    [inference, retrieval] = await Promise.all([spawnPlaneNode("inference", env), spawnPlaneNode("retrieval", { ...env, SWITCHYARD_MAX_UPLOAD_BODY: "4kb" })]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([inference?.stop(), retrieval?.stop()]);
  });

  it("refuse unsigned calls, the bare bearer secret and a wrong secret's signature (401), and accept a signature by every secret of the rotated list", async () => {
    for (const node of [inference, retrieval]) {
      const path = node === inference ? "/v1/model" : "/v1/tenants/acme/documents";
      for (const authorization of [null, `Bearer ${NODE_SECRET}`, `Basic ${NODE_SECRET}`]) {
        const refused = await node.call(path, { authorization });
        expect(refused.status).toBe(401);
        expect((await refused.json()) as unknown).toMatchObject({ error: { kind: "forbidden", code: "unauthenticated" } });
      }
      const wrong = await node.call(path, { secret: "wrong-secret-0123456789" });
      expect(wrong.status).toBe(401);
      expect((await wrong.json()) as unknown).toMatchObject({ error: { code: "signature_invalid" } });
      expect((await node.call(path, { secret: OLD_SECRET })).status).toBe(200);
      expect((await node.call(path)).status).toBe(200);
    }
    // A client with a wrong secret sees the node as unavailable (the caller did nothing wrong), not a retry loop.
    const err = await caught(new HttpInference({ url: inference.url, secret: "wrong-secret-0123456789" }).model());
    expect({ kind: err.kind, code: err.code }).toEqual({ kind: "unavailable", code: "node_unauthorized" });
    expect((await caught(new HttpKnowledge({ url: retrieval.url, secret: "wrong-secret-0123456789" }).list("acme"))).code).toBe("node_unauthorized");
  });

  it("answer health and readiness without the secret, and Prometheus metrics with the engine's gauges", async () => {
    for (const node of [inference, retrieval]) {
      expect(await (await node.call("/healthz", { authorization: null })).json()).toEqual({ status: "ok" });
      expect(await (await node.call("/readyz", { authorization: null })).json()).toEqual({ status: "ready" });
      const text = await (await node.call("/metrics", { authorization: null })).text();
      expect(text).toContain("switchyard_http_requests_total");
    }
    const text = await (await inference.call("/metrics")).text();
    expect(metric(text, "switchyard_engine_running_sequences")).toBe(0);
  });

  it("cancel the engine's sequence when the client aborts mid-stream", async () => {
    const client = new HttpInference({ url: inference.url, secret: NODE_SECRET });
    const stepsBefore = metric(await (await inference.call("/metrics")).text(), "switchyard_engine_decode_steps");
    const controller = new AbortController();
    let texts = 0;
    let error: unknown;
    try {
      for await (const event of client.generate({ promptTokens: [1], params: params(500), signal: controller.signal })) {
        if (event.type === "text" && ++texts === 3) controller.abort(new Error("caller went away"));
      }
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toBe("caller went away");
    // The sequence is gone: nothing running, waiting or paused (an unread sequence the node forgot would sit
    // paused), no key/value cache held, and the decode steps stop far short of the 500 asked for.
    const gauges = ["switchyard_engine_running_sequences", "switchyard_engine_waiting_requests", "switchyard_engine_paused_sequences", "switchyard_engine_kv_cache_bytes"];
    let page = "";
    for (let i = 0; i < 100; i++) {
      page = await (await inference.call("/metrics")).text();
      if (gauges.every((g) => metric(page, g) === 0)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const g of gauges) expect(metric(page, g), g).toBe(0);
    const steps = metric(page, "switchyard_engine_decode_steps") - stepsBefore;
    await new Promise((r) => setTimeout(r, 200));
    expect(metric(await (await inference.call("/metrics")).text(), "switchyard_engine_decode_steps") - stepsBefore).toBe(steps);
    expect(steps).toBeLessThan(250);
  });

  it("carry a typed error across intact: the same kind, message, code and details as in process", async () => {
    const client = new HttpInference({ url: inference.url, secret: NODE_SECRET });
    const { contextLength } = await client.model();
    const promptTokens = Array.from({ length: contextLength - 5 }, () => 1);
    const err = await caught((async () => {
      for await (const _ of client.generate({ promptTokens, params: params(10) })) void _;
    })());
    const expected = new ContextLengthError(contextLength - 5, 10, contextLength);
    expect(err).toBeInstanceOf(PlaneError);
    expect({ kind: err.kind, message: err.message, code: err.code, details: err.details }).toEqual({ kind: expected.kind, message: expected.message, code: expected.code, details: expected.details });
    const missing = await caught(new HttpKnowledge({ url: retrieval.url, secret: NODE_SECRET }).get("acme", "doc_missing"));
    expect(missing.kind).toBe("not_found");
  });

  it("refuse an upload over the node's limit while it streams in (too_large), keeping nothing of it", async () => {
    const client = new HttpKnowledge({ url: retrieval.url, secret: NODE_SECRET });
    const policy = { chunkSize: 256, chunkOverlap: 32 };
    const big = new TextEncoder().encode("word ".repeat(1000));
    const err = await caught(client.upload("big-tenant", { bytes: big, format: "text" }, policy));
    expect({ kind: err.kind, code: err.code }).toEqual({ kind: "too_large", code: "document_too_large" });
    // No content-length: the node counts the bytes as they arrive.
    const chunk = new TextEncoder().encode("word ".repeat(200));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 10) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const header = encodeURIComponent(JSON.stringify({ format: "text", policy }));
    const streamed = await retrieval.call("/v1/tenants/big-tenant/documents", { method: "POST", body, headers: { "x-switchyard-upload": header }, duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await client.list("big-tenant")).toEqual([]);
    expect((await client.upload("big-tenant", { bytes: chunk, format: "text" }, policy)).created).toBe(true);
  });

  it("retry idempotent calls on a node that cannot be reached, and never a generate", async () => {
    // A port nothing listens on.
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const attempts: string[] = [];
    const counting: typeof fetch = (input, init) => (attempts.push(String(input)), fetch(input, init));
    const client = new HttpInference({ url: `http://127.0.0.1:${closed}`, secret: NODE_SECRET, retries: 2, backoffMs: 1, fetch: counting });
    expect((await caught(client.encode({ candidates: [{ text: "hi" }] }))).kind).toBe("unavailable");
    expect(attempts).toHaveLength(3);
    attempts.length = 0;
    const err = await caught((async () => {
      for await (const _ of client.generate({ promptTokens: [1], params: params(4) })) void _;
    })());
    expect({ kind: err.kind, code: err.code }).toEqual({ kind: "unavailable", code: "node_unreachable" });
    expect(attempts).toHaveLength(1);
  });
});
