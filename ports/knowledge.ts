/**
 * The knowledge port: a tenant's documents and the search over them. The edge resolves the tenant's
 * settings and limits and passes what ingestion needs in the call; the plane never reads tenants.
 */

export const DOCUMENT_FORMATS = ["text", "markdown", "html", "pdf", "jsonl"] as const;
export type DocumentFormat = (typeof DOCUMENT_FORMATS)[number];

export type SearchMode = "dense" | "bm25" | "hybrid";

/** How hybrid search merges the dense and BM25 lists: reciprocal ranks, or a weighted sum of min-max normalised scores. */
export const FUSION_METHODS = ["rrf", "weighted"] as const;
export type FusionMethod = (typeof FUSION_METHODS)[number];

/** Weights of the two lists in hybrid fusion (non-negative, not both 0; only their ratio matters). */
export interface FusionWeights {
  dense: number;
  bm25: number;
}

/** Keyword-side query expansion: none, or RM3 pseudo-relevance feedback (services/retrieval/rm3.ts). */
export const QUERY_EXPANSIONS = ["none", "rm3"] as const;
export type QueryExpansion = (typeof QUERY_EXPANSIONS)[number];

export const SEARCH_GROUPINGS = ["chunk", "document"] as const;
export type SearchGrouping = (typeof SEARCH_GROUPINGS)[number];

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
  /** Hybrid only; defaults in services/retrieval/knowledge-base.ts (DEFAULT_FUSION). */
  fusion?: FusionMethod;
  weights?: Partial<FusionWeights>;
  /** BM25 and hybrid: expand the keyword query by RM3 feedback from its own top chunks. Default `none`. */
  expansion?: QueryExpansion;
  /** `document`: k distinct documents, each by its best chunk (with that chunk's offsets). Default `chunk`. */
  groupBy?: SearchGrouping;
  /**
   * Chunks: at most this many of one document while chunks of other documents are among the
   * candidates; the rest of the k, if any, are filled in rank order. Default: no cap.
   */
  maxChunksPerDocument?: number;
}

/** One retrieved chunk, with what a citation needs. */
export interface SearchHit {
  chunkId: number;
  documentId: string;
  title: string;
  text: string;
  /** Higher is better: cosine similarity (dense), BM25 (bm25) or the fused score (hybrid). */
  score: number;
  position: number;
  headingPath: string[];
  startOffset: number;
  endOffset: number;
  metadata: Record<string, unknown>;
}

export interface KnowledgeDocument {
  id: string;
  tenantId: string;
  title: string;
  format: string;
  status: "queued" | "processing" | "ready" | "failed";
  /** Ingestion progress, 0..1. */
  progress: number;
  chunkCount: number;
  sizeBytes: number;
  sha256: string;
  metadata: Record<string, unknown>;
  warning: string | null;
  error: string | null;
  /** Unix ms. */
  createdAt: number;
}

export interface DocumentUpload {
  bytes: Uint8Array;
  fileName?: string;
  mediaType?: string;
  /** Overrides detection (JSON uploads name it). */
  format?: DocumentFormat;
  title?: string;
  metadata?: Record<string, unknown>;
}

/** The tenant's settings and limits that ingestion obeys, resolved by the edge. */
export interface IngestPolicy {
  /** Chunk size and overlap in tokens. */
  chunkSize: number;
  chunkOverlap: number;
  /** Undefined: the plane's default. */
  maxDocuments?: number;
  maxDocumentBytes?: number;
}

export interface UploadResult {
  document: KnowledgeDocument;
  /** false when identical content was already stored (idempotent re-upload). */
  created: boolean;
}

/** Limits on one batch upload (the plane's defaults: DEFAULT_BATCH_LIMITS in services/retrieval/knowledge-base.ts). */
export interface BatchLimits {
  maxDocuments: number;
  /** Sum of the documents' bytes (an archive's entries counted decompressed). */
  maxBytes: number;
}

/**
 * One document of a batch: accepted (queued, or already stored), or refused on its own without failing
 * the others. `upload` is the index of the upload it answers; `entry` the document's path inside that
 * upload when it is an archive (absent for a plain upload, and for an archive refused whole).
 */
export type BatchItem = (
  | ({ ok: true } & UploadResult)
  | { ok: false; error: { kind: "invalid_request" | "too_large" | "unsupported_media_type"; message: string; param: string | null } }
) & { upload: number; entry?: string };

export interface Knowledge {
  upload(tenantId: string, upload: DocumentUpload, policy: IngestPolicy): Promise<UploadResult>;
  /**
   * Stores many documents as one unit of ingestion work (one index save for the batch) and returns
   * once each is accepted or refused, before ingestion ends: follow it with `get`. Items answer the
   * uploads in order; a .zip, .tar or .tar.gz upload stands for its files (one item per entry, titled
   * with its path; one refused item when the archive is corrupt). Throws `too_large` when the batch
   * exceeds its limits, archive entries included (nothing is stored then).
   */
  uploadBatch(tenantId: string, uploads: DocumentUpload[], policy: IngestPolicy): Promise<BatchItem[]>;
  get(tenantId: string, documentId: string): Promise<KnowledgeDocument>;
  list(tenantId: string, page?: { limit?: number; offset?: number }): Promise<KnowledgeDocument[]>;
  delete(tenantId: string, documentId: string): Promise<void>;
  /** Re-embeds every stored chunk into a fresh index; resolves to the number of vectors. */
  reindex(tenantId: string): Promise<number>;
  search(tenantId: string, request: SearchRequest): Promise<SearchHit[]>;
}
