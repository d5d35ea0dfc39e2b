import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { uploadRandomAdapter } from "./fixtures.ts";

/** The tenant's default adapter, over HTTP against the real server, engine and adapters. */
let p: TestPlatform;
const messages = [{ role: "user", content: "Once upon a time" }];
const greedy = { messages, max_tokens: 16, temperature: 0 };
let baseText: string;

beforeAll(async () => {
  p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "reference");
  baseText = (await chat(key, { strategy: "prompt" })).choices[0].message.content;
});
afterAll(async () => {
  await p.stop();
});

async function chat(key: string, extra: Record<string, unknown> = {}, body: Record<string, unknown> = greedy) {
  const res = await p.call("POST", "/v1/chat/completions", { key, json: { ...body, ...extra } });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`chat failed: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function settingsOf(key: string) {
  return (await (await p.call("GET", "/v1/tenant", { key })).json()).settings;
}

async function patchTenant(key: string, json: unknown) {
  const res = await p.call("PATCH", "/v1/tenant", { key, json });
  expect(res.status).toBe(200);
  return (await res.json()).settings;
}

/** A tenant with its own adapter, and the adapter's greedy answer (named explicitly, so no default is involved). */
async function tenantWithAdapter(name: string, seed: number) {
  const { key } = await createTenantWithKey(p, name);
  const adapterId = await uploadRandomAdapter(p, key, name, seed);
  const adapted = await chat(key, { model: name });
  expect(adapted.switchyard).toMatchObject({ strategy: "adapter", adapter: `${name}@1` });
  expect(adapted.choices[0].message.content).not.toBe(baseText); // the adapter changes the output at all
  return { key, adapterId, adaptedText: adapted.choices[0].message.content as string };
}

describe("a default adapter applies to requests that name neither an adapter nor a strategy", () => {
  it("set with POST /v1/adapters/:id/default: chats without a model, or naming the base, run it", async () => {
    const { key, adapterId, adaptedText } = await tenantWithAdapter("house", 3);
    expect(await settingsOf(key)).toMatchObject({ defaultAdapter: null, defaultStrategy: "prompt" });
    const set = await p.call("POST", `/v1/adapters/${adapterId}/default`, { key });
    expect(set.status).toBe(200);
    expect(await settingsOf(key)).toMatchObject({ defaultAdapter: adapterId, defaultStrategy: "adapter" });

    for (const extra of [{}, { model: "stories260k" }]) {
      const res = await chat(key, extra);
      expect(res.switchyard).toMatchObject({ strategy: "adapter", adapter: "house@1" });
      expect(res.choices[0].message.content).toBe(adaptedText);
    }
    const plain = await chat(key, { strategy: "prompt" }); // an explicit strategy still wins
    expect(plain.switchyard).toMatchObject({ strategy: "prompt", adapter: null });
    expect(plain.choices[0].message.content).toBe(baseText);
  });

  it("set with PATCH /v1/tenant by name; an explicit defaultStrategy wins; null resets either", async () => {
    const { key, adapterId, adaptedText } = await tenantWithAdapter("patched", 4);
    expect(await patchTenant(key, { defaultAdapter: "patched" })).toMatchObject({ defaultAdapter: adapterId, defaultStrategy: "adapter" });
    const adapted = await chat(key);
    expect(adapted.switchyard).toMatchObject({ strategy: "adapter", adapter: "patched@1" });
    expect(adapted.choices[0].message.content).toBe(adaptedText);

    expect(await patchTenant(key, { defaultStrategy: "rag" })).toMatchObject({ defaultAdapter: adapterId, defaultStrategy: "rag" });
    const rag = await chat(key);
    expect(rag.switchyard).toMatchObject({ strategy: "rag", adapter: null });
    expect(rag.choices[0].message.content).toBe(baseText); // an empty knowledge base: the same prompt as the base

    expect(await patchTenant(key, { defaultStrategy: "rag+adapter" })).toMatchObject({ defaultStrategy: "rag+adapter" });
    expect((await chat(key)).switchyard).toMatchObject({ strategy: "rag+adapter", adapter: "patched@1" });

    expect(await patchTenant(key, { defaultStrategy: null })).toMatchObject({ defaultStrategy: "adapter" });
    expect((await chat(key)).switchyard).toMatchObject({ strategy: "adapter", adapter: "patched@1" });

    expect(await patchTenant(key, { defaultAdapter: null })).toMatchObject({ defaultAdapter: null, defaultStrategy: "prompt" });
    const reset = await chat(key);
    expect(reset.switchyard).toMatchObject({ strategy: "prompt", adapter: null });
    expect(reset.choices[0].message.content).toBe(baseText);
  });

  it("compare runs the default adapter for its adapter strategies", async () => {
    const { key, adaptedText } = await tenantWithAdapter("compared", 5);
    await patchTenant(key, { defaultAdapter: "compared" });
    const res = await p.call("POST", "/v1/compare", { key, json: { ...greedy, strategies: ["prompt", "adapter"] } });
    expect(res.status).toBe(200);
    const [prompt, adapter] = (await res.json()).results;
    expect(prompt).toMatchObject({ strategy: "prompt", adapter: null, content: baseText, error: null });
    expect(adapter).toMatchObject({ strategy: "adapter", adapter: "compared@1", content: adaptedText, error: null });
  });
});

it("the OpenAPI description says how the default strategy follows the default adapter", async () => {
  const { paths } = await (await p.call("GET", "/openapi.json")).json();
  const chatBody = paths["/v1/chat/completions"].post.requestBody.content["application/json"].schema;
  expect(chatBody.properties.strategy.description).toContain("`adapter` while it has a defaultAdapter");
  const tenantBody = paths["/v1/tenant"].patch.requestBody.content["application/json"].schema;
  expect(tenantBody.properties.defaultStrategy.description).toContain("Unset: `adapter` while a defaultAdapter is set");
  expect(tenantBody.properties.defaultAdapter.description).toContain("cleared when that adapter is deleted");
});

describe("a default adapter that goes away", () => {
  it("deleting it clears the setting: chats fall back to the base, GET /v1/tenant shows the reset", async () => {
    const { key, adapterId } = await tenantWithAdapter("doomed", 6);
    await patchTenant(key, { defaultAdapter: adapterId });
    expect((await chat(key)).switchyard.adapter).toBe("doomed@1");
    expect((await p.call("DELETE", `/v1/adapters/${adapterId}`, { key })).status).toBe(200);

    expect(await settingsOf(key)).toMatchObject({ defaultAdapter: null, defaultStrategy: "prompt" });
    const after = await chat(key);
    expect(after.switchyard).toMatchObject({ strategy: "prompt", adapter: null });
    expect(after.choices[0].message.content).toBe(baseText);
  });

  it("with an explicit defaultStrategy 'adapter', deleting it makes chats a 400 adapter_required, not a silent fallback", async () => {
    const { key, adapterId } = await tenantWithAdapter("pinned", 7);
    await patchTenant(key, { defaultAdapter: adapterId, defaultStrategy: "adapter" });
    expect((await p.call("DELETE", `/v1/adapters/${adapterId}`, { key })).status).toBe(200);
    const res = await p.call("POST", "/v1/chat/completions", { key, json: greedy });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ type: "invalid_request_error", param: "strategy", code: "adapter_required" });
  });
});

describe("changing the default while a request runs", () => {
  const long = { messages, max_tokens: 400, temperature: 0, stream: true };

  /** Sequences the engine holds: running, or parked while this test reads the metrics instead of the stream (one reading). */
  async function liveSequences(): Promise<number> {
    const text = await (await p.call("GET", "/metrics")).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]);
    return gauge("switchyard_engine_running_sequences") + gauge("switchyard_engine_paused_sequences");
  }

  /** Starts a streamed chat and returns once it has sent a few tokens and is still running in the engine. */
  async function startStream(key: string) {
    const res = await p.call("POST", "/v1/chat/completions", { key, json: long });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let received = "";
    while ((received.match(/"content":"[^"]+"/g) ?? []).length < 3) {
      const chunk = await reader.read();
      if (chunk.done) break;
      received += new TextDecoder().decode(chunk.value);
    }
    expect(await liveSequences()).toBe(1);
    return async () => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) received += new TextDecoder().decode(chunk.value);
      const events = received
        .split("\n")
        .filter((l) => l.startsWith("data: ") && l !== "data: [DONE]")
        .map((l) => JSON.parse(l.slice(6)));
      return { text: events.map((e) => e.choices[0]?.delta?.content ?? "").join(""), switchyard: events.findLast((e) => e.switchyard)?.switchyard };
    };
  }

  async function setUp(name: string, seed: number) {
    const t = await tenantWithAdapter(name, seed);
    const reference = await chat(t.key, { model: name }, { ...long, stream: false });
    expect(reference.choices[0].finish_reason).toBe("length"); // long enough to still be running when the default changes
    await patchTenant(t.key, { defaultAdapter: name });
    return { ...t, referenceText: reference.choices[0].message.content as string };
  }

  it("a reset applies to the next request; the running one finishes with the adapter it started with", async () => {
    const { key, referenceText } = await setUp("steady", 8);
    const finish = await startStream(key);
    expect(await patchTenant(key, { defaultAdapter: null })).toMatchObject({ defaultAdapter: null, defaultStrategy: "prompt" });
    const done = await finish();
    expect(done.switchyard).toMatchObject({ strategy: "adapter", adapter: "steady@1" });
    expect(done.text).toBe(referenceText);
    const next = await chat(key);
    expect(next.switchyard).toMatchObject({ strategy: "prompt", adapter: null });
    expect(next.choices[0].message.content).toBe(baseText);
  });

  it("a delete lets the running request finish, then clears the default", async () => {
    const { key, adapterId, referenceText } = await setUp("fleeting", 9);
    const finish = await startStream(key);
    expect((await p.call("DELETE", `/v1/adapters/${adapterId}`, { key })).status).toBe(200);
    expect(await settingsOf(key)).toMatchObject({ defaultAdapter: null, defaultStrategy: "prompt" });
    const done = await finish();
    expect(done.switchyard).toMatchObject({ strategy: "adapter", adapter: "fleeting@1" });
    expect(done.text).toBe(referenceText);
    expect((await chat(key)).switchyard).toMatchObject({ strategy: "prompt", adapter: null });
    expect((await p.call("GET", `/v1/adapters/${adapterId}`, { key })).status).toBe(404);
  });
});
