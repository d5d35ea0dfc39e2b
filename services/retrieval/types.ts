export type { FusionMethod, FusionWeights, SearchFilter, SearchGrouping, SearchHit, SearchMode, SearchRequest } from "../../ports/knowledge.ts";

/** Turns texts into unit-length vectors. Implementations batch internally. */
export interface Embedder {
  /** Identifies the model; an index built with another id must be rebuilt (see KnowledgeBase.reindex). */
  readonly id: string;
  readonly dimension: number;
  /** The longest input the model reads; chunks are cut to fit it. */
  readonly maxTokens?: number;
  /** Tokens the model sees for `text`, used to size chunks (a word-count estimate when absent). */
  countTokens?(text: string): number;
  embed(texts: string[]): Promise<Float32Array[]>;
  close?(): Promise<void>;
}
