import type { Registry } from "prom-client";
import type { Db } from "../store/db.ts";
import { AdapterCache } from "./cache.ts";
import type { BaseModelShape, PeftLimits } from "./peft.ts";
import { AdapterRegistry } from "./registry.ts";
import type { LoraWeights } from "./types.ts";

export { AdapterCache, DEFAULT_MAX_ADAPTERS_PER_BATCH, type AdapterCacheStats, type CachedAdapter } from "./cache.ts";
export { AdapterError, type AdapterErrorCode } from "./errors.ts";
export { AdapterRegistry, type AdapterLease, type Viewer } from "./registry.ts";
export { extractAdapterArchive, type AdapterFiles } from "./archive.ts";
export { loadPeftAdapter, validatePeftAdapter, type BaseModelShape, type PeftLimits } from "./peft.ts";
export { LoraSlotTable } from "./slot-table.ts";
export { withAdapterLeases } from "./serving.ts";

export interface AdapterServiceOptions {
  db: Db;
  dataDir: string;
  base: { id: string; shape: BaseModelShape };
  limits: PeftLimits;
  cacheBudgetBytes: number;
  maxAdaptersPerBatch?: number;
  metrics?: Registry;
}

export interface AdapterService {
  registry: AdapterRegistry;
  cache: AdapterCache;
  /** What the engine is given: the adapter's weights, loaded through the cache. */
  resolveAdapter(id: string): Promise<LoraWeights>;
  /**
   * Holds an adapter for one request: its files survive a delete and its weights stay resident
   * (pinned) until `release()`.
   */
  acquire(id: string): Promise<AdapterInUse>;
}

export interface AdapterInUse {
  weights: LoraWeights;
  release(): void;
}

/** The node's adapter plane: registry on disk + store, and the LRU cache that loads from it. */
export async function createAdapterService(options: AdapterServiceOptions): Promise<AdapterService> {
  const registry = new AdapterRegistry(options);
  await registry.recover();
  const cache = new AdapterCache({
    load: (id) => registry.loadWeights(id),
    budgetBytes: options.cacheBudgetBytes,
    maxAdaptersPerBatch: options.maxAdaptersPerBatch,
    metrics: options.metrics,
  });
  registry.onRemoved((id) => cache.invalidate(id));
  const acquire = async (id: string): Promise<AdapterInUse> => {
    const lease = registry.acquire(id);
    try {
      const pinned = await cache.acquire(id);
      return {
        weights: pinned.weights,
        release: () => {
          pinned.release();
          lease.release();
        },
      };
    } catch (e) {
      lease.release();
      throw e;
    }
  };
  return { registry, cache, resolveAdapter: (id) => cache.get(id), acquire };
}
