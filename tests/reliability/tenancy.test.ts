/**
 * Cross-tenant access over every object and every form of its id: another tenant's documents,
 * adapters (id, name, name@version, BASE:ADAPTER), usage and search filters are indistinguishable
 * from objects that do not exist (404, or the route's usual not-found refusal), and the other
 * tenant's data is unchanged afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform, type TestResponse } from "../helpers/platform.ts";
import { adapterForm, adapterZip } from "./fixtures.ts";
import { Tally } from "./tally.ts";

let p: TestPlatform;
let attacker: { tenantId: string; key: string };
let victim: { tenantId: string; key: string };
const victimObjects = { documentId: "", adapterId: "", adapterV1: "" };
let victimBefore: string;
const tally = new Tally();

async function upload(key: string, name: string, seed: number) {
  const res = await p.call("POST", "/v1/adapters", { key, body: adapterForm(name, adapterZip(seed)) });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string };
}

/** Everything the victim can see of its own data, as one comparable string. */
async function victimSnapshot(): Promise<string> {
  const get = async (path: string) => (await p.call("GET", path, { key: victim.key })).json();
  const docs = await get("/v1/knowledge/documents");
  const adapters = await get("/v1/adapters");
  const tenant = await get("/v1/tenant");
  const usage = await get("/v1/usage");
  const search = await (await p.call("POST", "/v1/knowledge/search", { key: victim.key, json: { query: "launch codes", k: 5 } })).json();
  return JSON.stringify({ docs: docs.data, adapters: adapters.data, tenant, usage: usage.total, search: search.data.map((h: { chunk_id: number }) => h.chunk_id) });
}

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  attacker = await createTenantWithKey(p, "attacker");
  victim = await createTenantWithKey(p, "victim");
  const doc = await p.call("POST", "/v1/knowledge/documents", {
    key: victim.key,
    json: { title: "Launch codes", text: "The launch codes are kept in the blue safe.", metadata: { team: "secret" } },
  });
  victimObjects.documentId = (await doc.json()).id;
  victimObjects.adapterV1 = (await upload(victim.key, "secret-bot", 5)).id;
  victimObjects.adapterId = (await upload(victim.key, "secret-bot", 6)).id;
  expect((await p.call("POST", `/v1/adapters/${victimObjects.adapterId}/default`, { key: victim.key })).status).toBe(200);
  const chat = await p.call("POST", "/v1/chat/completions", { key: victim.key, json: { messages: [{ role: "user", content: "Once" }], max_tokens: 2 } });
  expect(chat.status).toBe(200);
  await p.call("POST", "/v1/knowledge/documents", { key: attacker.key, json: { title: "Mine", text: "The launch party is on Friday.", metadata: { team: "secret" } } });
  await upload(attacker.key, "my-bot", 7);
  victimBefore = await victimSnapshot();
});

afterAll(async () => {
  console.log(tally.table("cross-tenant requests (attacker's key on the victim's objects)"));
  await p.stop();
});

async function asAttacker(method: string, path: string, json?: unknown): Promise<TestResponse> {
  const res = await p.call(method, path, { key: attacker.key, json });
  tally.record(`${method} ${path.replace(/(%64oc|doc|%61d|ad)_\w+/g, "{id}").replace(/\/models\/.*/, "/models/{ref}")}`, res.status);
  return res;
}

/** The not-found error the route gives for something that never existed, to compare against. */
async function expectSameAsMissing(res: TestResponse, missing: TestResponse) {
  const [got, none] = [await res.json(), await missing.json()];
  expect(res.status).toBe(missing.status);
  expect(got.error.type).toBe(none.error.type);
  expect(got.error.code).toBe(none.error.code);
  return got;
}

/** The forms one id can take in a URL: as is, and with its first letter percent-encoded (the router decodes it). */
const idForms = (id: string) => [id, id.replace(/^d/, "%64").replace(/^a/, "%61")];

describe("cross-tenant access is always not found", () => {
  it("documents: get and delete, in every id form", async () => {
    for (const id of idForms(victimObjects.documentId)) {
      for (const method of ["GET", "DELETE"]) {
        const res = await asAttacker(method, `/v1/knowledge/documents/${id}`);
        expect(res.status, `${method} ${id}`).toBe(404);
        expect((await res.json()).error.type).toBe("not_found_error");
      }
    }
    const list = await (await asAttacker("GET", "/v1/knowledge/documents")).json();
    expect(list.data.map((d: { id: string }) => d.id)).not.toContain(victimObjects.documentId);
  });

  it("search: another tenant's document ids and metadata filter to nothing", async () => {
    for (const mode of ["dense", "bm25", "hybrid"]) {
      const only = await (await asAttacker("POST", "/v1/knowledge/search", { query: "launch codes blue safe", k: 10, mode, filter: { document_ids: [victimObjects.documentId] } })).json();
      expect(only.data, mode).toEqual([]);
      const mixed = await (await asAttacker("POST", "/v1/knowledge/search", { query: "launch codes blue safe", k: 10, mode, filter: { metadata: { team: "secret" } } })).json();
      expect(mixed.data.length, mode).toBeGreaterThan(0);
      expect(mixed.data.every((h: { document_id: string; text: string }) => h.document_id !== victimObjects.documentId && !h.text.includes("blue safe")), mode).toBe(true);
    }
  });

  it("adapters: get, delete and make-default by id, in every id form", async () => {
    const missingId = "ad_000000000000000000000000";
    for (const id of [...idForms(victimObjects.adapterId), victimObjects.adapterV1]) {
      for (const [method, suffix] of [["GET", ""], ["DELETE", ""], ["POST", "/default"]] as const) {
        const res = await asAttacker(method, `/v1/adapters/${id}${suffix}`);
        const missing = await p.call(method, `/v1/adapters/${missingId}${suffix}`, { key: attacker.key });
        const body = await expectSameAsMissing(res, missing);
        expect(res.status, `${method} ${id}${suffix}`).toBe(404);
        expect(body.error.message).not.toContain("secret-bot");
      }
    }
    const list = await (await asAttacker("GET", "/v1/adapters")).json();
    expect(list.data.map((a: { name: string }) => a.name)).toEqual(["my-bot"]);
  });

  it("models and chat: the adapter by name, name@version, BASE:name and id is model_not_found", async () => {
    const refs = ["secret-bot", "secret-bot@1", "secret-bot@2", "stories260k:secret-bot", "stories260k:secret-bot@2", victimObjects.adapterId, `stories260k:${victimObjects.adapterId}`];
    const missingChat = await p.call("POST", "/v1/chat/completions", { key: attacker.key, json: { model: "no-such-bot", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 } });
    const missingModel = await p.call("GET", "/v1/models/no-such-bot", { key: attacker.key });
    for (const model of refs) {
      for (const stream of [false, true]) {
        const res = await asAttacker("POST", "/v1/chat/completions", { model, stream, messages: [{ role: "user", content: "Hi" }], max_tokens: 1 });
        const body = await expectSameAsMissing(res, missingChat.clone() as TestResponse);
        expect(res.status, model).toBe(404);
        expect(body.error.code).toBe("model_not_found");
      }
      const got = await asAttacker("GET", `/v1/models/${encodeURIComponent(model)}`);
      await expectSameAsMissing(got, missingModel.clone() as TestResponse);
    }
    const models = await (await asAttacker("GET", "/v1/models")).json();
    expect(JSON.stringify(models)).not.toContain("secret-bot");
    expect(JSON.stringify(models)).not.toContain(victimObjects.adapterId);
  });

  it("compare: naming the other tenant's adapter runs nothing with it", async () => {
    const res = await asAttacker("POST", "/v1/compare", { model: "secret-bot", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 });
    const text = await res.text();
    expect(res.status === 404 || res.status === 200, text).toBe(true);
    if (res.status === 200) {
      const body = JSON.parse(text);
      for (const r of body.results) expect(r.error?.code ?? r.error, JSON.stringify(r)).toBeTruthy();
    }
    expect(text).not.toContain(victimObjects.adapterId);
  });

  it("tenant settings: another tenant's adapter as default is refused like a missing one", async () => {
    const missing = await p.call("PATCH", "/v1/tenant", { key: attacker.key, json: { defaultAdapter: "no-such-bot" } });
    for (const ref of ["secret-bot", "secret-bot@2", victimObjects.adapterId]) {
      const res = await asAttacker("PATCH", "/v1/tenant", { defaultAdapter: ref });
      const body = await expectSameAsMissing(res, missing.clone() as TestResponse);
      expect(body.error.code).toBe("adapter_not_found");
    }
    expect((await (await p.call("GET", "/v1/tenant", { key: attacker.key })).json()).settings?.defaultAdapter ?? null).toBeNull();
  });

  it("usage: the attacker sees only its own (none), whatever the window", async () => {
    for (const q of ["", "?from=0", `?from=0&to=${Date.now() + 1e9}`]) {
      const usage = await (await asAttacker("GET", `/v1/usage${q}`)).json();
      expect(usage.total.requests).toBe(0);
      expect(usage.data).toEqual([]);
    }
  });

  it("the victim's data is unchanged after all of it", async () => {
    expect(await victimSnapshot()).toBe(victimBefore);
    const doc = await (await p.call("GET", `/v1/knowledge/documents/${victimObjects.documentId}`, { key: victim.key })).json();
    expect(doc).toMatchObject({ status: "ready", title: "Launch codes" });
    const tenant = await (await p.call("GET", "/v1/tenant", { key: victim.key })).json();
    expect(JSON.stringify(tenant)).toContain(victimObjects.adapterId);
  });
});
