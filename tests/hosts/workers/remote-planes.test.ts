/**
 * The whole chat path on Workers: the edge inside workerd, on D1, handing chat, compare and knowledge to
 * real `switchyard serve inference|retrieval` processes on loopback (plane-nodes.global.ts) through the
 * HTTP clients (clients/). Greedy decoding on stories260k, so every path to the same prompt gives the same
 * text: streamed and not, compare's arms and the chats of the same strategies.
 */
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
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
