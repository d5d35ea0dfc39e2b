import type { AdapterWeights } from "../model/prompt-tuning.ts";

/**
 * What the engine holds while a sequence uses an adapter: its weights, resident until `release`.
 * The engine acquires when a request is submitted and releases exactly once when the sequence
 * ends (finished, failed or cancelled), with its completion tokens when it finished normally.
 */
export interface AdapterLease {
  weights: AdapterWeights;
  release(completionTokens?: number): void;
}

/** Where the engine gets adapters by id (the adapter plane's leases; a fixed map in tests and the CLI). */
export interface AdapterLeaseSource {
  acquire(id: string): Promise<AdapterLease>;
}

/** Leases over a plain loader: nothing is pinned or counted (the CLI, benchmarks, engine tests). */
export function unpinnedAdapters(load: (id: string) => Promise<AdapterWeights>): AdapterLeaseSource {
  return { acquire: async (id) => ({ weights: await load(id), release: () => {} }) };
}
