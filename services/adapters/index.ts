/**
 * The node's adapter plane: the catalog (rows in the store, files in the blob store), the LRU cache
 * that loads weights from the blobs, and the leases the engine holds per request.
 */
import { join } from "node:path";
import type { Registry } from "prom-client";
import type { StoreDb } from "../store/store-db.ts";
import { LocalAdapterBlobs } from "./blob-store.ts";
import { AdapterCache } from "./cache.ts";
import { StoreAdapterCatalog } from "./catalog.ts";
import { AdapterLeases } from "./leases.ts";
import type { BaseModelShape, PeftLimits } from "./peft.ts";
import { loadAdapter } from "./validate.ts";

export { AdapterCache, DEFAULT_MAX_ADAPTERS_PER_BATCH, type AdapterCacheStats, type CachedAdapter } from "./cache.ts";
export { AdapterError, type AdapterErrorCode } from "./errors.ts";
export { StoreAdapterCatalog, toInfo, type AdapterCatalogOptions } from "./catalog.ts";
export { LocalAdapterBlobs, CONFIG_FILE, MODEL_FILE, type AdapterBlobs } from "./blob-store.ts";
export { AdapterLeases } from "./leases.ts";
export { readAdapterUpload, type UploadRules, type ReadUpload } from "./upload.ts";
export { extractAdapterArchive, type AdapterFiles } from "./archive.ts";
export { writeAdapterArchive } from "./archive-writer.ts";
export { loadPeftAdapter, validatePeftAdapter, type BaseModelShape, type PeftLimits } from "./peft.ts";
export { loadAdapter, validateAdapter, type AdapterKind, type AdapterSummary } from "./validate.ts";

export interface AdapterServiceOptions {
  db: StoreDb;
  dataDir: string;
  base: { id: string; shape: BaseModelShape };
  limits: PeftLimits;
  cacheBudgetBytes: number;
  /** Largest upload, also the decompressed-size limit (default 64 MiB). */
  maxUploadBytes?: number;
  /** The folder adapters may be loaded from by path; undefined: off. */
  loraDir?: string;
  maxAdaptersPerBatch?: number;
  metrics?: Registry;
  /** Where a deletion goes instead of this service's own leases (the engine's worker thread holds them there). */
  retire?: (id: string) => Promise<void>;
}

export interface AdapterService {
  catalog: StoreAdapterCatalog;
  cache: AdapterCache;
  /** What the engine is given (`adapters`): pins an adapter for one request. */
  leases: AdapterLeases;
  blobs: LocalAdapterBlobs;
}

const DEFAULT_MAX_UPLOAD_BYTES = 64 << 20;

/** Opens the plane on `${dataDir}/adapters/<id>/` and sweeps what a crash left there. */
export async function createAdapterService(options: AdapterServiceOptions): Promise<AdapterService> {
  const blobs = await LocalAdapterBlobs.open(join(options.dataDir, "adapters"), (id) => join("adapters", id));
  const cache = new AdapterCache({
    load: async (id) => loadAdapter(id, await blobs.read(id), options.base.shape, options.limits),
    budgetBytes: options.cacheBudgetBytes,
    maxAdaptersPerBatch: options.maxAdaptersPerBatch,
    metrics: options.metrics,
  });
  const leases = new AdapterLeases(cache, blobs);
  const catalog = new StoreAdapterCatalog({
    db: options.db,
    blobs,
    base: options.base,
    limits: options.limits,
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    loraDir: options.loraDir,
    retire: options.retire ?? ((id) => leases.retire(id)),
  });
  await catalog.recover();
  return { catalog, cache, leases, blobs };
}
