import type { LoraTarget } from "../model/lora-layout.ts";

/** `layers.{i}.{target}`, e.g. "layers.3.q_proj". */
export type LoraModuleKey = `layers.${number}.${LoraTarget}`;

export interface LoraModuleWeights {
  rank: number;
  /** A^T laid out [in, rank], row-major, so that x·A is a plain matmul. */
  a: Float32Array;
  /** (scale · B)^T laid out [rank, out], row-major: the adapter's scale is folded in at load time. */
  b: Float32Array;
}

/** An adapter loaded into memory, ready to be fed to the decoder graph. */
export interface LoraWeights {
  id: string;
  /** Largest rank over its modules (ranks may differ per module with rank_pattern). */
  maxRank: number;
  modules: Map<LoraModuleKey, LoraModuleWeights>;
  /** Bytes held by the tensors, for the cache's memory budget. */
  bytes: number;
}
