import { Counter, Gauge, type Registry } from "prom-client";
import { AdapterError } from "./errors.ts";
import type { AdapterWeights } from "../model/prompt-tuning.ts";

/** How many distinct adapters one decode batch may mix, unless the node configures otherwise. */
export const DEFAULT_MAX_ADAPTERS_PER_BATCH = 32;

export interface AdapterCacheOptions {
  /** Reads and converts an adapter (async file read, so other requests keep running). */
  load(id: string): Promise<AdapterWeights>;
  /** Bytes of LoRA tensors the cache may hold. */
  budgetBytes: number;
  maxAdaptersPerBatch?: number;
  /** Where to register the prom-client metrics; none when absent. */
  metrics?: Registry;
}

export interface AdapterCacheStats {
  id: string;
  loaded: boolean;
  pinned: number;
  bytes: number;
  hits: number;
  misses: number;
  /** Milliseconds the last load took. */
  loadMs: number;
  evictions: number;
  tokensServed: number;
}

/** A pinned adapter: it stays resident until released. */
export interface CachedAdapter {
  weights: AdapterWeights;
  release(): void;
}

interface Entry {
  weights: AdapterWeights;
  pins: number;
}

interface Metrics {
  hits: Counter<"adapter">;
  misses: Counter<"adapter">;
  evictions: Counter<"adapter">;
  tokens: Counter<"adapter">;
  loaded: Gauge<"adapter">;
  loadMs: Gauge<"adapter">;
  bytes: Gauge;
}

/**
 * An LRU of loaded adapters under a byte budget. Concurrent requests for one adapter share a
 * single load; pinned adapters (in a running batch) are never evicted.
 */
export class AdapterCache {
  readonly maxAdaptersPerBatch: number;
  readonly budgetBytes: number;
  /** Map order is recency: first = least recently used. */
  private readonly resident = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly stats = new Map<string, AdapterCacheStats>();
  private readonly metrics?: Metrics;
  private usedBytes = 0;

  constructor(private readonly options: AdapterCacheOptions) {
    if (!(options.budgetBytes > 0)) throw new Error(`adapter cache budget must be a positive number of bytes, got ${options.budgetBytes}`);
    this.budgetBytes = options.budgetBytes;
    this.maxAdaptersPerBatch = options.maxAdaptersPerBatch ?? DEFAULT_MAX_ADAPTERS_PER_BATCH;
    if (options.metrics) this.metrics = createMetrics(options.metrics, () => this.usedBytes);
  }

  /** The adapter's weights, loading them if needed (not pinned: they may be evicted later). */
  async get(id: string): Promise<AdapterWeights> {
    return (await this.entry(id)).weights;
  }

  /** The adapter's weights, pinned until `release()`. */
  async acquire(id: string): Promise<CachedAdapter> {
    const entry = await this.entry(id);
    entry.pins++;
    let released = false;
    return {
      weights: entry.weights,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
      },
    };
  }

  has(id: string): boolean {
    return this.resident.has(id);
  }

  /** The resident adapters' ids, least recently used first. */
  residentIds(): string[] {
    return [...this.resident.keys()];
  }

  get bytesUsed(): number {
    return this.usedBytes;
  }

  /** Counts tokens generated with this adapter (called by the engine per step or per request). */
  recordTokens(id: string, n: number): void {
    this.statsOf(id).tokensServed += n;
    this.metrics?.tokens.inc({ adapter: id }, n);
  }

  /** Drops an adapter (deleted, or replaced); a pinned one keeps serving its holders, unaccounted. */
  invalidate(id: string): void {
    this.loading.delete(id); // a load already under way still answers its callers but is not kept
    const entry = this.resident.get(id);
    if (!entry) return;
    this.drop(id, entry);
  }

  snapshot(): AdapterCacheStats[] {
    return [...this.stats.values()].map((s) => ({ ...s, pinned: this.resident.get(s.id)?.pins ?? 0 }));
  }

  private async entry(id: string): Promise<Entry> {
    const entry = this.resident.get(id);
    if (entry) {
      this.resident.delete(id);
      this.resident.set(id, entry); // most recently used
      this.count(id, "hits");
      return entry;
    }
    this.count(id, "misses");
    let pending = this.loading.get(id);
    if (!pending) {
      const load: Promise<Entry> = this.load(id, () => this.loading.get(id) === load).finally(() => {
        if (this.loading.get(id) === load) this.loading.delete(id);
      });
      pending = load;
      this.loading.set(id, pending);
    }
    return pending;
  }

  /** Loads and, unless `current()` says it was invalidated meanwhile, keeps the adapter resident. */
  private async load(id: string, current: () => boolean): Promise<Entry> {
    const started = performance.now();
    const weights = await this.options.load(id);
    if (weights.bytes > this.budgetBytes) {
      throw new AdapterError(
        "over_cache_budget",
        `adapter "${id}" needs ${weights.bytes} bytes of tensors, more than the adapter cache's whole budget of ${this.budgetBytes} bytes`,
      );
    }
    const entry: Entry = { weights, pins: 0 };
    if (!current()) return entry;
    this.makeRoom(id, weights.bytes);
    this.resident.set(id, entry);
    this.usedBytes += weights.bytes;
    const stats = this.statsOf(id);
    stats.loaded = true;
    stats.bytes = weights.bytes;
    stats.loadMs = performance.now() - started;
    this.metrics?.loaded.set({ adapter: id }, 1);
    this.metrics?.loadMs.set({ adapter: id }, stats.loadMs);
    return entry;
  }

  /** Evicts least recently used unpinned adapters until `bytes` more fit. */
  private makeRoom(id: string, bytes: number): void {
    for (const [victim, entry] of this.resident) {
      if (this.usedBytes + bytes <= this.budgetBytes) return;
      if (entry.pins > 0) continue;
      this.drop(victim, entry);
      this.count(victim, "evictions");
    }
    if (this.usedBytes + bytes > this.budgetBytes) {
      throw new AdapterError(
        "cache_full",
        `adapter "${id}" (${bytes} bytes) does not fit: the adapters in use hold ${this.usedBytes} of the cache's ${this.budgetBytes} bytes; retry when a request finishes`,
      );
    }
  }

  private drop(id: string, entry: Entry): void {
    this.resident.delete(id);
    this.usedBytes -= entry.weights.bytes;
    this.statsOf(id).loaded = false;
    this.metrics?.loaded.set({ adapter: id }, 0);
  }

  private count(id: string, what: "hits" | "misses" | "evictions"): void {
    this.statsOf(id)[what]++;
    this.metrics?.[what].inc({ adapter: id });
  }

  private statsOf(id: string): AdapterCacheStats {
    let stats = this.stats.get(id);
    if (!stats) {
      stats = { id, loaded: false, pinned: 0, bytes: 0, hits: 0, misses: 0, loadMs: 0, evictions: 0, tokensServed: 0 };
      this.stats.set(id, stats);
    }
    return stats;
  }
}

function createMetrics(registry: Registry, usedBytes: () => number): Metrics {
  const labelNames = ["adapter"] as const;
  const registers = [registry];
  return {
    hits: new Counter({ name: "switchyard_adapter_cache_hits_total", help: "Adapter requests served from the cache", labelNames, registers }),
    misses: new Counter({ name: "switchyard_adapter_cache_misses_total", help: "Adapter requests that had to load the adapter", labelNames, registers }),
    evictions: new Counter({ name: "switchyard_adapter_cache_evictions_total", help: "Times the adapter was evicted from the cache", labelNames, registers }),
    tokens: new Counter({ name: "switchyard_adapter_tokens_served_total", help: "Tokens generated with the adapter", labelNames, registers }),
    loaded: new Gauge({ name: "switchyard_adapter_loaded", help: "1 while the adapter is resident in the cache", labelNames, registers }),
    loadMs: new Gauge({ name: "switchyard_adapter_load_ms", help: "Milliseconds the adapter's last load took", labelNames, registers }),
    bytes: new Gauge({
      name: "switchyard_adapter_cache_bytes",
      help: "Bytes of LoRA tensors resident in the adapter cache",
      registers,
      collect() {
        this.set(usedBytes());
      },
    }),
  };
}
