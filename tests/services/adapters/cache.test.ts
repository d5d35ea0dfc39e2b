import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { AdapterCache } from "../../../services/adapters/cache.ts";
import { AdapterError } from "../../../services/adapters/errors.ts";
import type { LoraWeights } from "../../../services/model/lora-layout.ts";

/** A fake adapter of `bytes` bytes; the loader counts calls and can be held open. */
function fakeLoader(sizes: Record<string, number>) {
  const calls: string[] = [];
  const gates = new Map<string, () => void>();
  const load = async (id: string): Promise<LoraWeights> => {
    calls.push(id);
    if (id.startsWith("slow")) await new Promise<void>((resolve) => gates.set(id, resolve));
    if (!(id in sizes)) throw new Error(`no adapter ${id}`);
    return { id, maxRank: 4, modules: new Map(), bytes: sizes[id]! };
  };
  return { load, calls, open: (id: string) => gates.get(id)?.() };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("adapter cache", () => {
  it("evicts the least recently used adapter to stay under the byte budget", async () => {
    const loader = fakeLoader({ a: 40, b: 40, c: 40 });
    const cache = new AdapterCache({ load: loader.load, budgetBytes: 100 });
    await cache.get("a");
    await cache.get("b");
    await cache.get("a"); // a is now more recent than b
    await cache.get("c"); // must evict b
    expect(cache.has("a")).toBe(true);
    expect(cache.has("b")).toBe(false);
    expect(cache.has("c")).toBe(true);
    expect(cache.bytesUsed).toBe(80);
    await cache.get("b");
    expect(loader.calls).toEqual(["a", "b", "c", "b"]);
    const stats = Object.fromEntries(cache.snapshot().map((s) => [s.id, s]));
    expect(stats.a).toMatchObject({ loaded: false, hits: 1, misses: 1, evictions: 1 });
    expect(stats.b).toMatchObject({ loaded: true, hits: 0, misses: 2, evictions: 1 });
    expect(stats.c).toMatchObject({ loaded: true, misses: 1, evictions: 0, bytes: 40 });
  });

  it("never evicts pinned adapters, and refuses when only pinned ones could make room", async () => {
    const loader = fakeLoader({ a: 50, b: 30, c: 40 });
    const cache = new AdapterCache({ load: loader.load, budgetBytes: 100 });
    const a = await cache.acquire("a");
    await cache.get("b");
    await cache.get("c"); // evicts b (unpinned), keeps a
    expect(cache.has("a")).toBe(true);
    expect(cache.has("b")).toBe(false);
    const c = await cache.acquire("c");
    const e = await cache.get("b").catch((err: unknown) => err);
    expect(e).toBeInstanceOf(AdapterError);
    expect((e as AdapterError).reason).toBe("cache_full");
    a.release();
    c.release();
    await cache.get("b"); // now a (least recent) can go
    expect(cache.has("a")).toBe(false);
    expect(cache.has("c")).toBe(true);
  });

  it("refuses an adapter larger than the whole budget", async () => {
    const cache = new AdapterCache({ load: fakeLoader({ huge: 500 }).load, budgetBytes: 100 });
    const e = await cache.get("huge").catch((err: unknown) => err);
    expect((e as AdapterError).reason).toBe("over_cache_budget");
    expect((e as AdapterError).message).toMatch(/needs 500 bytes .* budget of 100 bytes/);
    expect(cache.bytesUsed).toBe(0);
  });

  it("shares one load among concurrent callers and keeps serving others meanwhile", async () => {
    const loader = fakeLoader({ slow: 10, fast: 10 });
    const cache = new AdapterCache({ load: loader.load, budgetBytes: 100 });
    const first = cache.get("slow");
    const second = cache.get("slow");
    await flush();
    expect(await cache.get("fast")).toMatchObject({ id: "fast" }); // not blocked by the pending load
    loader.open("slow");
    const [x, y] = await Promise.all([first, second]);
    expect(x).toBe(y);
    expect(loader.calls.filter((c) => c === "slow")).toHaveLength(1);
  });

  it("a failed load is not cached and can be retried", async () => {
    const sizes: Record<string, number> = {};
    const loader = fakeLoader(sizes);
    const cache = new AdapterCache({ load: loader.load, budgetBytes: 100 });
    await expect(cache.get("x")).rejects.toThrow(/no adapter x/);
    sizes.x = 5;
    expect((await cache.get("x")).bytes).toBe(5);
  });

  it("invalidate drops an adapter and frees its bytes", async () => {
    const cache = new AdapterCache({ load: fakeLoader({ a: 40 }).load, budgetBytes: 100 });
    await cache.get("a");
    cache.invalidate("a");
    expect(cache.has("a")).toBe(false);
    expect(cache.bytesUsed).toBe(0);
  });

  it("an adapter invalidated while loading answers its callers but is not kept", async () => {
    const loader = fakeLoader({ slow: 10 });
    const cache = new AdapterCache({ load: loader.load, budgetBytes: 100 });
    const pending = cache.get("slow");
    await flush();
    cache.invalidate("slow");
    loader.open("slow");
    expect((await pending).id).toBe("slow");
    expect(cache.has("slow")).toBe(false);
    expect(cache.bytesUsed).toBe(0);
  });

  it("exports per-adapter metrics to prom-client", async () => {
    const metrics = new Registry();
    const cache = new AdapterCache({ load: fakeLoader({ a: 40, b: 70 }).load, budgetBytes: 100, maxAdaptersPerBatch: 8, metrics });
    expect(cache.maxAdaptersPerBatch).toBe(8);
    await cache.get("a");
    await cache.get("a");
    cache.recordTokens("a", 12);
    cache.recordTokens("a", 3);
    await cache.get("b"); // evicts a
    const text = await metrics.metrics();
    expect(text).toContain('switchyard_adapter_cache_hits_total{adapter="a"} 1');
    expect(text).toContain('switchyard_adapter_cache_misses_total{adapter="a"} 1');
    expect(text).toContain('switchyard_adapter_cache_evictions_total{adapter="a"} 1');
    expect(text).toContain('switchyard_adapter_tokens_served_total{adapter="a"} 15');
    expect(text).toContain('switchyard_adapter_loaded{adapter="a"} 0');
    expect(text).toContain('switchyard_adapter_loaded{adapter="b"} 1');
    expect(text).toMatch(/switchyard_adapter_load_ms\{adapter="b"\} \d/);
    expect(text).toContain("switchyard_adapter_cache_bytes 70");
    expect(cache.snapshot().find((s) => s.id === "a")!.tokensServed).toBe(15);
  });
});
