/**
 * One lookup per request: a chat with an adapter, through the real app, reads the catalog once (the
 * edge's resolve, one query on the adapters table) and acquires the cache once; the engine's lease
 * does not go back to the store, warm cache or cold.
 */
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AdapterCache } from "../../../services/adapters/cache.ts";
import { StoreAdapterCatalog } from "../../../services/adapters/catalog.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { uploadRandomAdapter } from "./fixtures.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "counted"));
  await uploadRandomAdapter(p, key, "counted-bot", 5);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await p.stop();
});

/** Counts catalog calls, cache acquires and SQL statements on the adapters table during `run`. */
async function counting(run: () => Promise<void>) {
  const spies = {
    resolve: vi.spyOn(StoreAdapterCatalog.prototype, "resolve"),
    get: vi.spyOn(StoreAdapterCatalog.prototype, "get"),
    list: vi.spyOn(StoreAdapterCatalog.prototype, "list"),
    acquire: vi.spyOn(AdapterCache.prototype, "acquire"),
    prepare: vi.spyOn(Database.prototype, "prepare"),
  };
  try {
    await run();
    const adapterQueries = spies.prepare.mock.calls.filter(([sql]) => /"adapters"/.test(String(sql))).length;
    return { resolve: spies.resolve.mock.calls.length, get: spies.get.mock.calls.length, list: spies.list.mock.calls.length, acquire: spies.acquire.mock.calls.length, adapterQueries };
  } finally {
    for (const spy of Object.values(spies)) spy.mockRestore();
  }
}

async function chat(extra: Record<string, unknown>) {
  const res = await p.call("POST", "/v1/chat/completions", { key, json: { messages: [{ role: "user", content: "Once" }], max_tokens: 4, temperature: 0, ...extra } });
  const body = await res.json();
  expect(res.status, JSON.stringify(body)).toBe(200);
  expect(body.switchyard).toMatchObject({ strategy: "adapter", adapter: "counted-bot@1" });
}

describe("a chat request with an adapter", () => {
  it("does one catalog lookup and one cache acquire, cold and warm", async () => {
    const expected = { resolve: 1, get: 0, list: 0, acquire: 1, adapterQueries: 1 };
    expect(await counting(() => chat({ model: "counted-bot" }))).toEqual(expected); // cold: the cache loads from the files
    expect(await counting(() => chat({ model: "counted-bot" }))).toEqual(expected); // warm: a cache hit
  });

  it("the same through the tenant's default adapter", async () => {
    const models = await (await p.call("GET", "/v1/models/counted-bot", { key })).json();
    expect((await p.call("POST", `/v1/adapters/${models.adapter_id}/default`, { key })).status).toBe(200);
    expect(await counting(() => chat({}))).toEqual({ resolve: 1, get: 0, list: 0, acquire: 1, adapterQueries: 1 });
  });
});
