/**
 * Holds adapters for the requests using them: a lease pins the adapter's weights in the cache and
 * keeps its files on disk until released; releasing records the request's tokens in the metrics.
 *
 * Deletion (`retire`) stops new leases at once (an in-memory check before the cache, so a cache hit
 * cannot slip past it) while the holders finish; when the last one lets go the files are removed and
 * the cache entry dropped. An acquire never queries the store: the edge resolved the id already, and
 * a cache miss reads the files, which exist only for ready or still-held adapters.
 */
import type { AdapterLease, AdapterLeaseSource } from "../inference/adapter-lease.ts";
import type { AdapterBlobs } from "./blob-store.ts";
import type { AdapterCache } from "./cache.ts";
import { AdapterError } from "./errors.ts";

export class AdapterLeases implements AdapterLeaseSource {
  private readonly holders = new Map<string, number>();
  /** Deleted, files kept for their holders; no new lease. */
  private readonly retired = new Set<string>();
  private readonly removals = new Set<Promise<void>>();

  constructor(
    private readonly cache: AdapterCache,
    private readonly blobs: AdapterBlobs,
  ) {}

  async acquire(id: string): Promise<AdapterLease> {
    if (this.retired.has(id)) throw new AdapterError("not_found", `adapter "${id}" not found`);
    this.hold(id); // before the load: a delete during it waits for this request
    try {
      const pinned = await this.cache.acquire(id);
      let released = false;
      return {
        weights: pinned.weights,
        release: (completionTokens) => {
          if (released) return;
          released = true;
          if (completionTokens !== undefined) this.cache.recordTokens(id, completionTokens);
          pinned.release();
          this.letGo(id);
        },
      };
    } catch (e) {
      this.letGo(id);
      throw e;
    }
  }

  /** The adapter was deleted: no new lease; its files and cache entry go when the last holder lets go. */
  async retire(id: string): Promise<void> {
    this.retired.add(id);
    if (!this.holders.has(id)) await this.remove(id);
  }

  /** Leases held on the adapter now. */
  held(id: string): number {
    return this.holders.get(id) ?? 0;
  }

  /** Resolves once the files of every retired, released adapter are gone (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.removals);
  }

  private hold(id: string): void {
    this.holders.set(id, this.held(id) + 1);
  }

  private letGo(id: string): void {
    const left = this.held(id) - 1;
    if (left > 0) return void this.holders.set(id, left);
    this.holders.delete(id);
    if (!this.retired.has(id)) return;
    const removal = this.remove(id).finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }

  private async remove(id: string): Promise<void> {
    await this.blobs.remove(id);
    this.cache.invalidate(id);
    this.retired.delete(id); // from now on a read finds no files: not_found
  }
}
