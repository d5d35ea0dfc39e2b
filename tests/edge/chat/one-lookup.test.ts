/**
 * One lookup per request: a chat with an adapter, through the real app, reads the catalog once (the
 * edge's resolve, one query on the adapters table) and acquires the cache once; the engine's lease
 * does not go back to the store, warm cache or cold. With the engine in a worker thread (which opens no
 * database at all) the cache there is counted through its metrics: one miss cold, one hit warm.
 */
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AdapterCache } from "../../../services/adapters/cache.ts";
import { StoreAdapterCatalog } from "../../../services/adapters/catalog.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { uploadRandomAdapter } from "./fixtures.ts";

let p: TestPlatform;
let key: string;
let adapterId: string;

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

/** The worker's adapter cache counters for the adapter: [misses, hits]. */
async function workerCacheCounts(): Promise<[number, number]> {
  const text = await (await p.call("GET", "/metrics")).text();
  const read = (name: string) => Number(new RegExp(`^switchyard_adapter_cache_${name}_total\\{adapter="${adapterId}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return [read("misses"), read("hits")];
}

describe.each(["main", "worker"] as const)("a chat request with an adapter, engine thread %s", (thread) => {
  beforeAll(async () => {
    p = await startTestPlatform({ SWITCHYARD_ENGINE_THREAD: thread });
    ({ key } = await createTenantWithKey(p, "counted"));
    adapterId = await uploadRandomAdapter(p, key, "counted-bot", 5);
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await p.stop();
  });
  // In the worker, the cache acquire happens there: none on this thread.
  const expected = { resolve: 1, get: 0, list: 0, acquire: thread === "main" ? 1 : 0, adapterQueries: 1 };

  it("does one catalog lookup and one cache acquire, cold and warm", async () => {
    expect(await counting(() => chat({ model: "counted-bot" }))).toEqual(expected); // cold: the cache loads from the files
    if (thread === "worker") expect(await workerCacheCounts()).toEqual([1, 0]);
    expect(await counting(() => chat({ model: "counted-bot" }))).toEqual(expected); // warm: a cache hit
    if (thread === "worker") expect(await workerCacheCounts()).toEqual([1, 1]);
  });

  it("the same through the tenant's default adapter", async () => {
    const models = await (await p.call("GET", "/v1/models/counted-bot", { key })).json();
    expect((await p.call("POST", `/v1/adapters/${models.adapter_id}/default`, { key })).status).toBe(200);
    expect(await counting(() => chat({}))).toEqual(expected);
    if (thread === "worker") expect(await workerCacheCounts()).toEqual([1, 2]);
  });
});
