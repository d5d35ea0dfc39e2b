/**
 * The whole chat path on Workers: the edge inside workerd, on D1, handing chat, compare and knowledge to
 * real `switchyard serve inference|retrieval` processes on loopback (plane-nodes.global.ts) through the
 * HTTP clients (clients/). Greedy decoding on stories260k, so every path to the same prompt gives the same
 * text: streamed and not, compare's arms and the chats of the same strategies.
 */
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { call, tenantWithKey } from "./helpers.ts";

const DOC = "Lily had a red ball. She played with the ball in the park every day with her dog Max.";
const messages = [{ role: "user", content: "What did Lily play with?" }];
const CHAT = { model: "stories260k", temperature: 0, max_tokens: 16, messages };

type Auth = Record<string, string>;

/** The SSE `data:` payloads of a response, as JSON (without [DONE]). */
async function events(res: Response): Promise<Array<Record<string, any>>> {
  const text = await res.text();
  expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
  return text.split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]").map((l) => JSON.parse(l.slice(6)));
}

function post(path: string, auth: Auth, body: unknown): Promise<Response> {
  return SELF.fetch(`https://edge.test${path}`, { method: "POST", headers: auth, body: JSON.stringify(body) });
}

/** Uploads DOC as a multipart file and waits until the retrieval node has ingested it. */
async function uploadLily(auth: Auth): Promise<string> {
  const form = new FormData();
  form.set("file", new File([DOC], "lily.txt", { type: "text/plain" }));
  form.set("title", "Lily");
  const res = await SELF.fetch("https://edge.test/v1/knowledge/documents", { method: "POST", headers: { authorization: auth.authorization! }, body: form });
  expect(res.status, await res.clone().text()).toBe(201);
  const { id } = (await res.json()) as { id: string };
  for (let i = 0; i < 600; i++) {
    const doc = await call("GET", `/v1/knowledge/documents/${id}`, auth);
    if (doc.json.status === "ready") return id;
    expect(doc.json.status).not.toBe("failed");
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the document never became ready");
}

describe("the Workers edge with inference and retrieval nodes", () => {
  let auth: Auth;
  beforeAll(async () => {
    ({ auth } = await tenantWithKey("remote-co"));
  });

  it("answers a greedy chat, streamed the same as not, and records both on D1's usage", async () => {
    const plain = await call("POST", "/v1/chat/completions", auth, CHAT);
    expect(plain.status, JSON.stringify(plain.json)).toBe(200);
    const answer = plain.json.choices[0].message.content as string;
    expect(answer.length).toBeGreaterThan(0);
    expect(plain.json).toMatchObject({ object: "chat.completion", model: "stories260k", switchyard: { strategy: "prompt", sources: [] } });
    expect(plain.json.usage.prompt_tokens).toBeGreaterThan(0);

    const res = await post("/v1/chat/completions", auth, { ...CHAT, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const chunks = await events(res);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe(answer);
    expect(chunks.at(-1)!.usage).toEqual(plain.json.usage);

    const usage = await call("GET", "/v1/usage", auth);
    expect(usage.json.total).toMatchObject({ requests: 2, prompt_tokens: 2 * plain.json.usage.prompt_tokens, completion_tokens: 2 * plain.json.usage.completion_tokens });
  });

  it("uploads a document to the retrieval node, finds it, cites it in a RAG chat, and keeps it from other tenants", async () => {
    const id = await uploadLily(auth);
    const search = await call("POST", "/v1/knowledge/search", auth, { query: "Lily red ball", top_k: 3 });
    expect(search.status).toBe(200);
    expect(search.json.data[0]).toMatchObject({ document_id: id });
    expect(search.json.data[0].text).toContain("red ball");

    const rag = await call("POST", "/v1/chat/completions", auth, { ...CHAT, strategy: "rag" });
    expect(rag.status).toBe(200);
    expect(rag.json.switchyard.sources).toMatchObject([{ title: "Lily", start_offset: 0, end_offset: DOC.length }]);

    const other = await tenantWithKey("remote-other");
    expect((await call("GET", `/v1/knowledge/documents/${id}`, other.auth)).status).toBe(404);
    expect((await call("POST", "/v1/knowledge/search", other.auth, { query: "Lily red ball" })).json.data).toEqual([]);
  });

  it("compares strategies side by side, each arm answering what its own chat answers", async () => {
    const compared = await call("POST", "/v1/compare", auth, { ...CHAT, strategies: ["prompt", "rag"] });
    expect(compared.status, JSON.stringify(compared.json)).toBe(200);
    const [prompt, rag] = compared.json.results;
    for (const [arm, strategy] of [[prompt, "prompt"], [rag, "rag"]] as const) {
      const alone = await call("POST", "/v1/chat/completions", auth, { ...CHAT, strategy });
      expect(arm).toMatchObject({ strategy, error: null, content: alone.json.choices[0].message.content });
    }
    expect(rag.sources[0].title).toBe("Lily");
  });
});

describe("adapters, files and fine-tuning on the control node", () => {
  let auth: Auth;
  beforeAll(async () => {
    ({ auth } = await tenantWithKey("control-co"));
  });

  it("uploads an adapter through the Worker, lists it in /v1/models, and serves a chat with it from the inference node", async () => {
    const { config, model } = inject("adapterFiles");
    const form = new FormData();
    form.set("name", "edge-tuned");
    form.set("adapter_config", new File([base64(config)], "adapter_config.json"));
    form.set("adapter_model", new File([base64(model)], "adapter_model.safetensors"));
    const uploaded = await SELF.fetch("https://edge.test/v1/adapters", { method: "POST", headers: { authorization: auth.authorization! }, body: form });
    expect(uploaded.status, await uploaded.clone().text()).toBe(201);
    const adapter = (await uploaded.json()) as { id: string; name: string; version: number };
    expect(adapter).toMatchObject({ name: "edge-tuned", version: 1 });

    const models = await call("GET", "/v1/models", auth);
    expect(models.status).toBe(200);
    expect(models.json.data.map((m: { id: string }) => m.id)).toEqual(["stories260k", "edge-tuned"]);
    expect(models.json.data[1]).toMatchObject({ parent: "stories260k", adapter_id: adapter.id });
    expect((await call("GET", "/v1/models/edge-tuned", (await tenantWithKey("control-other")).auth)).status).toBe(404);

    const base = await call("POST", "/v1/chat/completions", auth, CHAT);
    const tuned = await call("POST", "/v1/chat/completions", auth, { ...CHAT, model: "edge-tuned" });
    expect(tuned.status, JSON.stringify(tuned.json)).toBe(200);
    expect(tuned.json.switchyard).toMatchObject({ strategy: "adapter", adapter: "edge-tuned@1" });
    expect(tuned.json.choices[0].message.content).not.toBe(base.json.choices[0].message.content);
  });

  it("stores a training file and lists the fine-tuning job made from it", async () => {
    const form = new FormData();
    form.set("purpose", "fine-tune");
    form.set("file", new File([trainingJsonl(4)], "train.jsonl"));
    const file = await SELF.fetch("https://edge.test/v1/files", { method: "POST", headers: { authorization: auth.authorization! }, body: form });
    expect(file.status, await file.clone().text()).toBe(200);
    const { id: fileId } = (await file.json()) as { id: string };
    expect((await call("GET", "/v1/files", auth)).json.data.map((f: { id: string }) => f.id)).toEqual([fileId]);

    const job = await call("POST", "/v1/fine_tuning/jobs", auth, { model: "stories260k", training_file: fileId });
    expect(job.status, JSON.stringify(job.json)).toBe(200);
    const listed = await call("GET", "/v1/fine_tuning/jobs", auth);
    expect(listed.json).toMatchObject({ object: "list", has_more: false });
    expect(listed.json.data.map((j: { id: string; training_file: string }) => [j.id, j.training_file])).toEqual([[job.json.id, fileId]]);
    const other = await tenantWithKey("control-stranger");
    expect((await call("GET", "/v1/fine_tuning/jobs", other.auth)).json.data).toEqual([]);
    expect((await call("GET", `/v1/fine_tuning/jobs/${job.json.id}`, other.auth)).status).toBe(404);
  });
});

function base64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** n chat examples in OpenAI's fine-tuning JSONL. */
function trainingJsonl(n: number): string {
  const line = (i: number) => JSON.stringify({ messages: [{ role: "user", content: `What is ${i} plus one?` }, { role: "assistant", content: `${i + 1}.` }] });
  return Array.from({ length: n }, (_, i) => line(i)).join("\n") + "\n";
}
