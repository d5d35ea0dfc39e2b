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

export type SearchMode = "dense" | "bm25" | "hybrid";

export interface SearchFilter {
  /** Only chunks of these documents. */
  documentIds?: string[];
  /** Only documents whose metadata has these exact values (top-level keys). */
  metadata?: Record<string, string | number | boolean | null>;
}

export interface SearchRequest {
  query: string;
  k?: number;
  mode?: SearchMode;
  filter?: SearchFilter;
}

/** One retrieved chunk, with what a citation needs. */
export interface SearchHit {
  chunkId: number;
  documentId: string;
  title: string;
  text: string;
  /** Higher is better: cosine similarity (dense), BM25 (bm25) or reciprocal-rank fusion (hybrid). */
  score: number;
  position: number;
  headingPath: string[];
  startOffset: number;
  endOffset: number;
  metadata: Record<string, unknown>;
}
