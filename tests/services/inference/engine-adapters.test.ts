/**
 * The adapter plane wired to the real engine on stories260k: PEFT uploads through the catalog,
 * loaded by the cache, served by the engine's LoRA graph, which leases the adapter for every request.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateEvent, Inference } from "../../../ports/index.ts";
import { createAdapterService, type AdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { createEngine, type Engine } from "../../../services/inference/engine.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../../services/model/config.ts";
import { openWeights, type WeightStore } from "../../../services/model/safetensors.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";
import { greedyReference, params as greedyParams } from "../../helpers/generate.ts";
import { findSharedModel, mergedLookup, RECIPES } from "../../helpers/adapters.ts";

const STEPS = 16;
const params = (maxTokens = STEPS) => greedyParams({ maxTokens, logprobs: 0 });

async function tokensOf(events: AsyncIterable<GenerateEvent>, onToken?: () => void): Promise<number[]> {
  const tokens: number[] = [];
  for await (const e of events) {
    if (e.type === "text" && e.logprob) {
      tokens.push(e.tokenId);
      onToken?.();
    }
  }
  return tokens;
}

describe("PEFT adapters served by the engine", () => {
  let workDir: string;
  let store: OpenDatabase;
  let service: AdapterService;
  let engine: Engine;
  let inference: Inference;
  let config: DecoderConfig;
  let base: WeightStore;
  const ids: string[] = [];
  const uploads: Uint8Array[] = [];

  beforeAll(async () => {
    const modelDir = findSharedModel("stories260k");
    workDir = await mkdtemp(join(tmpdir(), "sy-adapters-engine-"));
    config = await loadDecoderConfig(modelDir);
    base = await openWeights(modelDir);
    store = openDatabase(join(workDir, "db.sqlite"));
    store.db.insert(tenants).values({ id: "t_1", name: "one" }).run();
    service = await createAdapterService({
      db: store.db,
      dataDir: workDir,
      base: { id: "stories260k", shape: config },
      limits: { maxRank: 16 },
      cacheBudgetBytes: 16 << 20,
      maxAdaptersPerBatch: 8,
      metrics: new Registry(),
    });
    for (const [k, recipe] of RECIPES.entries()) {
      const files = randomPeftAdapter(config, { amplitude: 0.3, ...recipe.options }).files;
      uploads.push(files.model);
      ids.push((await service.catalog.upload({ tenantId: "t_1", name: `recipe-${k}`, source: files })).id);
    }
    engine = await createEngine({
      modelDir,
      cacheDir: join(workDir, "compiled"),
      maxBatch: 8,
      maxAdaptersPerBatch: service.cache.maxAdaptersPerBatch,
      adapters: service.leases,
    });
    inference = engine;
  });

  afterAll(async () => {
    await engine?.close();
    base?.close();
    store?.close();
    await rm(workDir, { recursive: true, force: true });
  });

  it("a batch mixing four adapters and no adapter gives each sequence its tokens alone, matching merged-weight references, with no new session", async () => {
    const sessions = engine.stats().sessionsCreated;
    const jobs: Array<[adapter: number | undefined, prompt: string]> = [
      [0, "Tom had a red"],
      [undefined, "The cat"],
      [1, "One day, Lily"],
      [2, "Once"],
      [3, "The sun was"],
    ];
    const run = (adapter: number | undefined, prompt: string) =>
      tokensOf(inference.generate({ promptTokens: engine.tokenize(prompt), params: params(), adapter: adapter === undefined ? undefined : ids[adapter] }));
    const alone: number[][] = [];
    for (const [adapter, prompt] of jobs) alone.push(await run(adapter, prompt));
    const together = await Promise.all(jobs.map(([adapter, prompt]) => run(adapter, prompt)));
    expect(together).toEqual(alone);
    expect(engine.stats().peakBatch).toBeGreaterThanOrEqual(4);
    expect(engine.stats().sessionsCreated).toBe(sessions);

    for (const [k, [adapter, prompt]] of jobs.entries()) {
      const lookup = adapter === undefined ? (n: string) => base.getF32(n) : mergedLookup(base, uploads[adapter]!, RECIPES[adapter]!);
      expect(alone[k]).toEqual(greedyReference(config, lookup, engine.tokenize(prompt), STEPS));
    }
    expect(new Set(alone.map((t) => t.join(","))).size).toBe(jobs.length);

    const stats = new Map(service.cache.snapshot().map((s) => [s.id, s]));
    for (const [k, id] of ids.entries()) {
      const job = jobs.findIndex(([a]) => a === k);
      expect(stats.get(id)).toMatchObject({ loaded: true, misses: 1, pinned: 0, tokensServed: 2 * alone[job]!.length });
    }
  });

  it("deleting an adapter mid-request lets the request finish, then refuses new ones and removes the files", async () => {
    const id = ids[0]!;
    let deleted: Promise<unknown> | undefined;
    // The engine holds the lease until the sequence ends, which may be before the consumer reads its last events.
    const filesWhileHeld: boolean[] = [];
    const tokens = await tokensOf(inference.generate({ promptTokens: engine.tokenize("Tom had a red"), params: params(24), adapter: id }), () => {
      if (deleted && service.leases.held(id) > 0) filesWhileHeld.push(existsSync(service.blobs.dirOf(id)));
      deleted ??= service.catalog.delete(id, { tenantId: "t_1" });
    });
    await deleted;
    expect(tokens.length).toBe(24);
    expect(filesWhileHeld.length).toBeGreaterThan(0);
    expect(filesWhileHeld.every(Boolean)).toBe(true);
    expect(service.leases.held(id)).toBe(0);
    await service.leases.settled();
    expect(existsSync(service.blobs.dirOf(id))).toBe(false);
    expect(service.cache.has(id)).toBe(false);
    await expect(tokensOf(inference.generate({ promptTokens: [1], params: params(), adapter: id }))).rejects.toThrow(/not found/);
  });
});
