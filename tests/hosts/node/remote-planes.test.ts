/**
 * The same edge code with other port implementations: a Node edge started with --inference-url and
 * --retrieval-url (real `switchyard serve inference|retrieval` processes on loopback) answers a RAG chat,
 * streamed and not, exactly as the embedded platform does (greedy, stories260k, USE Lite); and so does
 * the Workers edge under `wrangler dev --local` (workerd, local D1) on the same nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findModel } from "../../helpers/model-path.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../../helpers/plane-node.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { preparedD1, startWranglerDev, type WranglerDev } from "../../helpers/wrangler-dev.ts";

const DOC = "Lily had a red ball. She played with the ball in the park every day with her dog Max.";
const WRANGLER_ADMIN = "wrangler-admin-key-0123456789";
const CHAT = { model: "stories260k", strategy: "rag", temperature: 0, max_tokens: 24, messages: [{ role: "user", content: "What did Lily play with?" }] };

interface Side {
  platform: TestPlatform;
  key: string;
  tenantId: string;
}

async function prepare(platform: TestPlatform): Promise<Side> {
  const { key, tenantId } = await createTenantWithKey(platform);
  const uploaded = await platform.call("POST", "/v1/knowledge/documents", { key, json: { title: "Lily", text: DOC } });
  expect(uploaded.status, await uploaded.clone().text()).toBe(201);
  const { id } = await uploaded.json();
  for (let i = 0; i < 200; i++) {
    const doc = await (await platform.call("GET", `/v1/knowledge/documents/${id}`, { key })).json();
    if (doc.status === "ready") return { platform, key, tenantId };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the document never became ready");
}

/** The streamed answer's text, from the SSE chunks. */
async function streamed(side: Side): Promise<string> {
  const response = await side.platform.call("POST", "/v1/chat/completions", { key: side.key, json: { ...CHAT, stream: true } });
  expect(response.status).toBe(200);
  const lines = (await response.text()).split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]");
  return lines.map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? "").join("");
}

describe("a Node edge with remote planes", () => {
  let inference: PlaneNodeChild;
  let retrieval: PlaneNodeChild;
  let remote: Side;
  let embedded: Side;
  let wrangler: WranglerDev;
  beforeAll(async () => {
    const d1 = preparedD1();
    [inference, retrieval] = await Promise.all([spawnPlaneNode("inference"), spawnPlaneNode("retrieval")]);
    const model = { SWITCHYARD_MODEL: findModel("stories260k") };
    const vars = { ADMIN_KEY: WRANGLER_ADMIN, NODE_SECRET, INFERENCE_URLS: inference.url, RETRIEVAL_URL: retrieval.url, LOG_LEVEL: "warn" };
    const [r, e, w] = await Promise.all([
      startTestPlatform({ ...model, SWITCHYARD_INFERENCE_URL: inference.url, SWITCHYARD_RETRIEVAL_URL: retrieval.url, SWITCHYARD_NODE_SECRET: NODE_SECRET }),
      startTestPlatform(model),
      d1.then((dir) => startWranglerDev(dir, vars)),
    ]);
    wrangler = w;
    [remote, embedded] = await Promise.all([prepare(r), prepare(e)]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([remote?.platform.stop(), embedded?.platform.stop(), wrangler?.stop()]);
    await Promise.all([inference?.stop(), retrieval?.stop()]);
  });

  it("answers a greedy RAG chat as the embedded platform does, with the same sources and usage", async () => {
    const [a, b] = await Promise.all([remote, embedded].map(async (s) => (await s.platform.call("POST", "/v1/chat/completions", { key: s.key, json: CHAT })).json()));
    expect(a.choices[0].message.content).not.toBe("");
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.usage).toEqual(b.usage);
    type Source = { title: string; score: number; start_offset: number; end_offset: number };
    const cited = (body: { switchyard: { sources: Source[] } }) => body.switchyard.sources.map(({ title, score, start_offset, end_offset }) => ({ title, score, start_offset, end_offset }));
    expect(cited(a)).toEqual(cited(b));
    expect(cited(a)).toMatchObject([{ title: "Lily", start_offset: 0, end_offset: DOC.length }]);
    // The document lives on the retrieval node, under the edge's tenant id.
    const listed = (await (await retrieval.call(`/v1/tenants/${encodeURIComponent(remote.tenantId)}/documents`)).json()) as { data: { title: string }[] };
    expect(listed.data.map((d) => d.title)).toEqual(["Lily"]);
  });

  it("streams the same answer", async () => {
    const [a, b] = await Promise.all([streamed(remote), streamed(embedded)]);
    expect(a).not.toBe("");
    expect(a).toBe(b);
  });

  it("answers the same chat under `wrangler dev --local` (the Workers edge in workerd, local D1, the same nodes)", async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const at = (path: string, key: string, json?: unknown): Promise<Omit<Response, "json"> & { json(): Promise<any> }> =>
      fetch(`${wrangler.url}${path}`, { method: json === undefined ? "GET" : "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: json === undefined ? undefined : JSON.stringify(json) });
    const tenant = await (await at("/v1/admin/tenants", WRANGLER_ADMIN, { name: "wrangler-co" })).json();
    const { key } = await (await at(`/v1/admin/tenants/${tenant.id}/keys`, WRANGLER_ADMIN, { name: "k" })).json();
    const uploaded = await at("/v1/knowledge/documents", key, { title: "Lily", text: DOC });
    expect(uploaded.status, await uploaded.clone().text()).toBe(201);
    const { id } = await uploaded.json();
    for (let i = 0; i < 200 && (await (await at(`/v1/knowledge/documents/${id}`, key)).json()).status !== "ready"; i++) await new Promise((r) => setTimeout(r, 25));

    const [a, b] = await Promise.all([at("/v1/chat/completions", key, CHAT).then((r) => r.json()), remote.platform.call("POST", "/v1/chat/completions", { key: remote.key, json: CHAT }).then((r) => r.json())]);
    expect(a.choices[0].message.content).not.toBe("");
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.usage).toEqual(b.usage);
    expect(a.switchyard.sources.map((s: { title: string }) => s.title)).toEqual(["Lily"]);
  });

  it("answers 503 when the inference node is unreachable, and refuses to start without the node secret", async () => {
    const broken = await startTestPlatform({ SWITCHYARD_MODEL: findModel("stories260k"), SWITCHYARD_INFERENCE_URL: "http://127.0.0.1:9", SWITCHYARD_NODE_SECRET: NODE_SECRET, SWITCHYARD_NODE_TIMEOUT_MS: "2000" });
    try {
      const { key } = await createTenantWithKey(broken);
      const response = await broken.call("POST", "/v1/chat/completions", { key, json: { ...CHAT, strategy: "prompt" } });
      expect(response.status).toBe(503);
    } finally {
      await broken.stop();
    }
    await expect(startTestPlatform({ SWITCHYARD_MODEL: findModel("stories260k"), SWITCHYARD_INFERENCE_URL: inference.url })).rejects.toThrow(/SWITCHYARD_NODE_SECRET/);
  });
});
