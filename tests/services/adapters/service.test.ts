import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAdapterService, type AdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";
import { STORIES } from "../../helpers/adapters.ts";
import { requireLora } from "../../../services/model/prompt-tuning.ts";

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
    const row = await service.catalog.upload({ tenantId: "t_acme", name: "bot", source: randomPeftAdapter(STORIES, { rank: 8, targets: ["q_proj"] }).files });
    const weights = requireLora(await service.cache.get(row.id));
    expect(weights).toMatchObject({ id: row.id, maxRank: 8 });
    expect(weights.modules.get("layers.0.q_proj")!.a.length).toBe(64 * 8);
    expect(await service.cache.get(row.id)).toBe(weights);
    expect(service.cache.snapshot()).toEqual([expect.objectContaining({ id: row.id, loaded: true, hits: 1, misses: 1 })]);
  });

  it("a request holding an adapter finishes after the adapter is deleted; then files and cache entry go", async () => {
    const row = await service.catalog.upload({ tenantId: "t_acme", name: "bot", source: randomPeftAdapter(STORIES, { targets: ["v_proj"] }).files });
    const inUse = await service.leases.acquire(row.id);
    await service.catalog.delete(row.id, { tenantId: "t_acme" });
    await expect(service.leases.acquire(row.id)).rejects.toThrow(/not found/); // no new request may start, cache hit or not
    expect(existsSync(service.blobs.dirOf(row.id))).toBe(true);
    expect(service.cache.has(row.id)).toBe(true);
    expect(requireLora(inUse.weights).modules.size).toBe(STORIES.numLayers);
    inUse.release(7);
    await service.leases.settled();
    expect(existsSync(service.blobs.dirOf(row.id))).toBe(false);
    expect(service.cache.has(row.id)).toBe(false);
    expect(service.cache.snapshot()).toEqual([expect.objectContaining({ id: row.id, tokensServed: 7 })]); // counted on release
  });

  it("an adapter larger than the cache budget is refused with a clear error, and its lease is returned", async () => {
    const row = await service.catalog.upload({ tenantId: "t_acme", name: "big", source: randomPeftAdapter(STORIES, { rank: 16 }).files });
    await expect(service.leases.acquire(row.id)).rejects.toThrow(/more than the adapter cache's whole budget of 262144 bytes/);
    expect(service.leases.held(row.id)).toBe(0);
  });
});
