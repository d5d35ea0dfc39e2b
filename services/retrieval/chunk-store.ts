import { and, eq, inArray, sql } from "drizzle-orm";
import type { OpenDatabase } from "../store/db.ts";
import { chunks, documents } from "../store/schema.ts";
import type { Chunk } from "./chunk.ts";
import { KnowledgeError } from "./errors.ts";
import { ftsMatchExpression } from "./keyword-query.ts";
import type { SearchFilter, SearchHit } from "./types.ts";

const INSERT_BATCH = 500;

/**
 * BM25 column weights of chunks_fts (migration 0008): a query word in the document's title counts as
 * much as this many occurrences in the chunk's text, and likewise for its heading path. FTS5's bm25()
 * uses k1 = 1.2 and b = 0.75 (fixed in SQLite), the row's length summed over the three columns, and
 * IDF log((N - n + 0.5) / (n + 0.5)) floored at a small positive value.
 */
export const BM25_WEIGHTS = { title: 2, heading: 1.5, text: 1 } as const;

/** SQL access to chunk rows and their FTS5 index (kept in step by triggers, see migration 0008). */
export class ChunkStore {
  constructor(private readonly store: Pick<OpenDatabase, "db" | "sqlite">) {}

  /** Replaces a document's chunks and marks it ready, atomically; null when the document is gone. */
  commitDocument(documentId: string, tenantId: string, list: Chunk[], warning: string | null): number[] | null {
    const { db } = this.store;
    return db.transaction((tx) => {
      const doc = tx.select({ id: documents.id }).from(documents).where(eq(documents.id, documentId)).get();
      if (!doc) return null;
      tx.delete(chunks).where(eq(chunks.documentId, documentId)).run();
      const ids: number[] = [];
      for (let i = 0; i < list.length; i += INSERT_BATCH) {
        const rows = list.slice(i, i + INSERT_BATCH).map((c) => ({ tenantId, documentId, ...c }));
        ids.push(...tx.insert(chunks).values(rows).returning({ id: chunks.id }).all().map((r) => r.id));
      }
      tx.update(documents)
        .set({ status: "ready", progress: 1, chunkCount: list.length, warning, error: null })
        .where(eq(documents.id, documentId))
        .run();
      return ids;
    });
  }

  chunkIds(tenantId: string): number[] {
    return this.store.db.select({ id: chunks.id }).from(chunks).where(eq(chunks.tenantId, tenantId)).all().map((r) => r.id);
  }

  chunkTexts(ids: number[]): Array<{ id: number; text: string }> {
    const out: Array<{ id: number; text: string }> = [];
    for (let i = 0; i < ids.length; i += INSERT_BATCH) {
      const part = ids.slice(i, i + INSERT_BATCH);
      out.push(...this.store.db.select({ id: chunks.id, text: chunks.text }).from(chunks).where(inArray(chunks.id, part)).all());
    }
    return out;
  }

  documentChunkIds(documentId: string): number[] {
    return this.store.db.select({ id: chunks.id }).from(chunks).where(eq(chunks.documentId, documentId)).all().map((r) => r.id);
  }

  /** Ids of the tenant's ready documents that pass the filter; undefined when there is no filter. */
  allowedDocuments(tenantId: string, filter: SearchFilter | undefined): string[] | undefined {
    if (!filter || (!filter.documentIds && !filter.metadata)) return undefined;
    const conditions = [eq(documents.tenantId, tenantId), eq(documents.status, "ready")];
    if (filter.documentIds) conditions.push(inArray(documents.id, filter.documentIds.length ? filter.documentIds : [""]));
    for (const [key, value] of Object.entries(filter.metadata ?? {})) conditions.push(metadataEquals(key, value));
    return this.store.db.select({ id: documents.id }).from(documents).where(and(...conditions)).all().map((r) => r.id);
  }

  chunkIdsOfDocuments(documentIds: string[]): number[] {
    if (documentIds.length === 0) return [];
    const rows = this.store.sqlite
      .prepare("SELECT id FROM chunks WHERE document_id IN (SELECT value FROM json_each(?))")
      .pluck()
      .all(JSON.stringify(documentIds)) as number[];
    return rows;
  }

  /** The document of each chunk id (ids of other tenants, or gone, are absent). */
  documentsOf(tenantId: string, ids: number[]): Map<number, string> {
    if (ids.length === 0) return new Map();
    const rows = this.store.sqlite
      .prepare("SELECT id, document_id AS documentId FROM chunks WHERE tenant_id = ? AND id IN (SELECT value FROM json_each(?))")
      .all(tenantId, JSON.stringify(ids)) as Array<{ id: number; documentId: string }>;
    return new Map(rows.map((r) => [r.id, r.documentId]));
  }

  /** BM25 (FTS5, weighted title, heading path and text) over the tenant's chunks: best first, score = -bm25 (higher is better). */
  bm25(tenantId: string, query: string, k: number, documentIds?: string[]): Array<{ label: number; score: number }> {
    return this.bm25Match(tenantId, ftsMatchExpression(query), k, documentIds);
  }

  /** As `bm25`, for a MATCH expression already built (e.g. the weighted one of RM3 expansion). */
  bm25Match(tenantId: string, match: string, k: number, documentIds?: string[]): Array<{ label: number; score: number }> {
    if (!match || (documentIds && documentIds.length === 0)) return [];
    const w = BM25_WEIGHTS;
    const docClause = documentIds ? "AND c.document_id IN (SELECT value FROM json_each(@docs))" : "";
    const rows = this.store.sqlite
      .prepare(
        `SELECT label, -rank AS score FROM (
           SELECT f.rowid AS label, bm25(chunks_fts, ${w.title}, ${w.heading}, ${w.text}) AS rank FROM chunks_fts f JOIN chunks c ON c.id = f.rowid
           WHERE chunks_fts MATCH @match AND c.tenant_id = @tenant ${docClause}
         ) ORDER BY rank, label LIMIT @k`,
      )
      .all({ match, tenant: tenantId, k, ...(documentIds ? { docs: JSON.stringify(documentIds) } : {}) });
    return rows as Array<{ label: number; score: number }>;
  }

  /** Chunk rows with their document's title and metadata, restricted to the tenant, keyed by id. */
  hydrate(tenantId: string, ids: number[]): Map<number, Omit<SearchHit, "score">> {
    const out = new Map<number, Omit<SearchHit, "score">>();
    if (ids.length === 0) return out;
    const rows = this.store.db
      .select({
        chunkId: chunks.id, documentId: chunks.documentId, title: documents.title, text: chunks.text,
        position: chunks.position, headingPath: chunks.headingPath, startOffset: chunks.startOffset,
        endOffset: chunks.endOffset, metadata: documents.metadata,
      })
      .from(chunks)
      .innerJoin(documents, eq(documents.id, chunks.documentId))
      .where(and(eq(chunks.tenantId, tenantId), inArray(chunks.id, ids)))
      .all();
    for (const row of rows) out.set(row.chunkId, row);
    return out;
  }
}

function metadataEquals(key: string, value: unknown) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(key)) {
    throw new KnowledgeError("invalid_request", `metadata filter key "${key}" must be 1-64 letters, digits, _ or -`, "filter.metadata");
  }
  const path = `$."${key}"`;
  if (value === null) return sql`json_type(${documents.metadata}, ${path}) = 'null'`;
  if (typeof value === "boolean") return sql`json_extract(${documents.metadata}, ${path}) = ${value ? 1 : 0} AND json_type(${documents.metadata}, ${path}) = ${value ? "true" : "false"}`;
  if (typeof value === "string" || typeof value === "number") return sql`json_extract(${documents.metadata}, ${path}) = ${value}`;
  throw new KnowledgeError("invalid_request", `metadata filter "${key}" must be a string, number, boolean or null`, "filter.metadata");
}
