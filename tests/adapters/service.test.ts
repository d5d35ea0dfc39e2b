import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAdapterService, type AdapterService } from "../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { openDatabase, type OpenDatabase } from "../../services/store/db.ts";
import { tenants } from "../../services/store/schema.ts";
import { STORIES } from "./helpers.ts";

let dataDir: string;
let store: OpenDatabase;
let service: AdapterService;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "adapters-service-"));
  store = openDatabase(join(dataDir, "db.sqlite"));
  store.db.insert(tenants).values({ id: "t_acme", name: "Acme" }).run();
  service = await createAdapterService({
    db: store.db,
    dataDir,
    base: { id: "stories260k", shape: STORIES },
    limits: { maxRank: 16 },
    cacheBudgetBytes: 256 << 10,
    metrics: new Registry(),
  });
});

afterEach(() => {
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("adapter service", () => {
  it("loads stored adapters through the cache in the graph's layout", async () => {
    const row = await service.registry.create({ tenantId: "t_acme", name: "bot", files: randomPeftAdapter(STORIES, { rank: 8, targets: ["q_proj"] }).files });
    const weights = await service.resolveAdapter(row.id);
    expect(weights).toMatchObject({ id: row.id, maxRank: 8 });
    expect(weights.modules.get("layers.0.q_proj")!.a.length).toBe(64 * 8);
    expect(await service.resolveAdapter(row.id)).toBe(weights);
    expect(service.cache.snapshot()).toEqual([expect.objectContaining({ id: row.id, loaded: true, hits: 1, misses: 1 })]);
  });

  it("a request holding an adapter finishes after the adapter is deleted; then files and cache entry go", async () => {
    const row = await service.registry.create({ tenantId: "t_acme", name: "bot", files: randomPeftAdapter(STORIES, { targets: ["v_proj"] }).files });
    const inUse = await service.acquire(row.id);
    await service.registry.delete(row.id, { tenantId: "t_acme" });
    await expect(service.acquire(row.id)).rejects.toThrow(/not found/); // no new request may start
    expect(existsSync(service.registry.dirOf(row.id))).toBe(true);
    expect(service.cache.has(row.id)).toBe(true);
    expect(inUse.weights.modules.size).toBe(STORIES.numLayers);
    inUse.release();
    await service.registry.settled();
    expect(existsSync(service.registry.dirOf(row.id))).toBe(false);
    expect(service.cache.has(row.id)).toBe(false);
  });

  it("an adapter larger than the cache budget is refused with a clear error, and its lease is returned", async () => {
    const row = await service.registry.create({ tenantId: "t_acme", name: "big", files: randomPeftAdapter(STORIES, { rank: 16 }).files });
    await expect(service.acquire(row.id)).rejects.toThrow(/more than the adapter cache's whole budget of 262144 bytes/);
    expect(service.registry.leaseCount(row.id)).toBe(0);
  });
});
