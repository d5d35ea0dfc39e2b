import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { OpenDatabase } from "../store/db.ts";
import { newId } from "../store/ids.ts";
import {
  FUSION_METHODS, QUERY_EXPANSIONS, SEARCH_GROUPINGS, type BatchItem, type BatchLimits, type DocumentUpload, type FusionMethod, type FusionWeights, type IngestPolicy, type Knowledge,
  type KnowledgeDocument, type QueryExpansion, type UploadResult,
} from "../../ports/knowledge.ts";
import { documents, type DocumentRow } from "../store/schema.ts";
import { chunkDocument, countWordTokens, type Chunk, type ChunkingOptions, type TokenCounter } from "./chunk.ts";
import { expandArchives } from "./archive.ts";
import { ChunkStore } from "./chunk-store.ts";
import { KnowledgeError } from "./errors.ts";
import { fuse, type Scored } from "./fusion.ts";
import { DEFAULT_RM3, rm3Weights, weightedMatchExpression } from "./rm3.ts";
import { limitPerDocument, type PerDocumentLimit } from "./per-document.ts";
import { SerialQueue } from "./serial-queue.ts";
import { sweepLeftovers } from "./sweep.ts";
import { DEFAULT_PARSE_LIMITS, DocumentParser, type ParseLimits } from "./isolated-parse.ts";
import { detectFormat, type DocumentFormat } from "./parse.ts";
import { ParsedCache } from "./parsed-cache.ts";
import type { Embedder, SearchHit, SearchMode, SearchRequest } from "./types.ts";
import { DEFAULT_HNSW, VectorIndex, type HnswParams, type VectorHit } from "./vector-index.ts";

/** The plane's capacity limits, for uploads whose policy sets none. */
export interface KnowledgeLimits {
  maxDocuments: number;
  maxDocumentBytes: number;
}

export const DEFAULT_LIMITS: KnowledgeLimits = { maxDocuments: 10_000, maxDocumentBytes: 20 * 1024 * 1024 };
/** One batch: at most this many documents and bytes (the edge's request-body limit applies too). */
export const DEFAULT_BATCH_LIMITS: BatchLimits = { maxDocuments: 1000, maxBytes: 64 * 1024 * 1024 };

export interface KnowledgeBaseOptions extends Pick<OpenDatabase, "db" | "sqlite"> {
  /** Indexes live in `${dataDir}/indexes`, uploads awaiting ingestion in `${dataDir}/documents`. */
  dataDir: string;
  embedder: Embedder;
  /** Defaults for every tenant; an upload's policy (maxDocuments, maxDocumentBytes) overrides them. */
  limits?: Partial<KnowledgeLimits>;
  hnsw?: Partial<HnswParams>;
  /** Documents up to this size are ingested before `upload` returns; larger ones in the background. */
  inlineBytes?: number;
  embedBatchSize?: number;
  /** Whether `close` also closes the embedder (when the knowledge base made it). Default false. */
  ownsEmbedder?: boolean;
  /** Limits on parsing one untrusted document (decoded bytes, time, memory); see isolated-parse.ts. */
  parseLimits?: Partial<ParseLimits>;
  /** Limits on one `uploadBatch` call (DEFAULT_BATCH_LIMITS). */
  batchLimits?: Partial<BatchLimits>;
}

/** The knowledge port in this process, with what only an in-process caller needs. */
export interface KnowledgeBase extends Knowledge {
  /** Resolves when every queued ingestion has finished. */
  idle(): Promise<void>;
  /** Labels in the tenant's vector index (for consistency checks). */
  indexedChunkIds(tenantId: string): Promise<number[]>;
  readonly embedder: Embedder;
  close(): Promise<void>;
}

/**
 * Hybrid search's fusion when a request names none: chosen by measurement on two test collections
 * (bench/retrieval-quality.ts; README "Retrieval quality"). Only the ratio of the weights matters.
 */
export const DEFAULT_FUSION: { method: FusionMethod; weights: FusionWeights } = { method: "weighted", weights: { dense: 0.3, bm25: 0.7 } };
/** Candidates each side gives fusion (and per-document limits): deep enough that a chunk found by one side only can still rank. */
export const fusionDepth = (k: number) => Math.max(10 * k, 100);
/** Text of parsed uploads held for their ingestion (UTF-16: up to 128 MB). */
const PARSED_CACHE_CHARS = 64 * 1024 * 1024;
const EXACT_SEARCH_MAX = 2048;
/** Texts per embedding call (and chunks per ingestion group) when the options set none. */
const DEFAULT_EMBED_CALL = 64;

/** Opens the knowledge base: sweeps crash leftovers, loads every tenant's index, reconciles it with SQLite, resumes unfinished ingestion. */
export async function createKnowledgeBase(options: KnowledgeBaseOptions): Promise<KnowledgeBase> {
  const kb = new SqliteKnowledgeBase(options);
  await kb.recover();
  return kb;
}

class SqliteKnowledgeBase implements KnowledgeBase {
  readonly embedder: Embedder;
  private readonly chunkStore: ChunkStore;
  private readonly indexes = new Map<string, Promise<VectorIndex>>();
  private readonly dirty = new Set<string>();
  /** Ingestion and reindexing, one job at a time: the index never sees two writers. */
  private readonly jobs = new SerialQueue();
  private closed = false;
  private readonly hnsw: HnswParams;
  private readonly indexDir: string;
  private readonly uploadDir: string;

  private readonly countTokens: TokenCounter;
  private readonly parser: DocumentParser;
  /** Documents parsed by `upload`, waiting for their ingestion job. */
  private readonly parsed = new ParsedCache(PARSED_CACHE_CHARS);

  constructor(private readonly options: KnowledgeBaseOptions) {
    this.embedder = options.embedder;
    this.countTokens = options.embedder.countTokens?.bind(options.embedder) ?? countWordTokens;
    this.chunkStore = new ChunkStore(options);
    this.hnsw = { ...DEFAULT_HNSW, ...options.hnsw };
    this.parser = new DocumentParser({ ...DEFAULT_PARSE_LIMITS, ...options.parseLimits });
    this.indexDir = join(options.dataDir, "indexes");
    this.uploadDir = join(options.dataDir, "documents");
    mkdirSync(this.indexDir, { recursive: true });
    mkdirSync(this.uploadDir, { recursive: true });
  }

  async recover(): Promise<void> {
    const pending = this.options.db
      .select({ id: documents.id, tenantId: documents.tenantId })
      .from(documents)
      .where(inArray(documents.status, ["queued", "processing"]))
      .orderBy(documents.createdAt)
      .all();
    sweepLeftovers(this.indexDir, this.uploadDir, new Set(pending.map((d) => d.id)));
    const tenantIds = this.options.db.selectDistinct({ id: documents.tenantId }).from(documents).all().map((r) => r.id);
    for (const tenantId of tenantIds) await this.indexFor(tenantId);
    const byTenant = new Map<string, string[]>();
    for (const doc of pending) byTenant.set(doc.tenantId, (byTenant.get(doc.tenantId) ?? []).concat(doc.id));
    for (const [tenantId, ids] of byTenant) void this.scheduleIngest(tenantId, ids);
  }

  async upload(tenantId: string, input: DocumentUpload, policy: IngestPolicy): Promise<UploadResult> {
    this.assertOpen();
    const accepted = await this.accept(tenantId, input, policy);
    if (!accepted.created) return accepted;
    const ingested = this.scheduleIngest(tenantId, [accepted.document.id]);
    if (input.bytes.length > (this.options.inlineBytes ?? 256 * 1024)) return accepted;
    await ingested;
    return { document: await this.get(tenantId, accepted.document.id), created: true };
  }

  /**
   * Accepts every document first (parse, durable copy, `queued` row), then queues their ingestion as
   * one job: their chunks share embedding calls, and the index is saved once, after the last document
   * (see scheduleIngest).
   */
  async uploadBatch(tenantId: string, uploads: DocumentUpload[], policy: IngestPolicy): Promise<BatchItem[]> {
    this.assertOpen();
    const limits = { ...DEFAULT_BATCH_LIMITS, ...this.options.batchLimits };
    if (uploads.length === 0) throw new KnowledgeError("invalid_request", "a batch needs at least one document", "documents");
    if (uploads.length > limits.maxDocuments) {
      throw new KnowledgeError("too_large", `batch holds ${uploads.length} documents; the limit is ${limits.maxDocuments}`, "documents");
    }
    const bytes = uploads.reduce((sum, u) => sum + u.bytes.length, 0);
    if (bytes > limits.maxBytes) throw new KnowledgeError("too_large", `batch holds ${bytes} bytes; the limit is ${limits.maxBytes}`, "documents");
    // Archives are read whole (and the limits checked) before the first document is stored.
    const expanded = await expandArchives(uploads, { maxBytes: limits.maxBytes, maxEntries: limits.maxDocuments });
    const items: BatchItem[] = [];
    try {
      for (const next of expanded) {
        const entry = { upload: next.source, ...(next.entry === undefined ? {} : { entry: next.entry }) };
        if ("refused" in next) {
          items.push({ ok: false, error: refusal(next.refused), ...entry });
          continue;
        }
        try {
          items.push({ ok: true, ...(await this.accept(tenantId, next.upload, policy)), ...entry });
        } catch (err) {
          if (!(err instanceof KnowledgeError) || err.kind === "not_found") throw err;
          items.push({ ok: false, error: refusal(err), ...entry });
        }
      }
    } finally {
      // Even when an unexpected error ends the batch, what was stored is ingested (not left queued until a restart).
      const created = items.flatMap((item) => (item.ok && item.created ? [item.document.id] : []));
      if (created.length > 0) void this.scheduleIngest(tenantId, created);
    }
    return items;
  }

  /** Validates, parses and stores one upload as a `queued` document (or finds identical content already stored); does not queue its ingestion. */
  private async accept(tenantId: string, input: DocumentUpload, policy: IngestPolicy): Promise<UploadResult> {
    const limits = this.limitsOf(policy);
    if (input.bytes.length > limits.maxDocumentBytes) {
      throw new KnowledgeError("too_large", `document is ${input.bytes.length} bytes; the limit maxDocumentBytes is ${limits.maxDocumentBytes}`, "file");
    }
    if (input.bytes.length === 0) throw new KnowledgeError("invalid_request", "document is empty", "file");
    const format = input.format ?? detectFormat(input.fileName, input.mediaType, input.bytes);
    const sha256 = createHash("sha256").update(format).update("\0").update(input.bytes).digest("hex");
    const known = this.findBySha(tenantId, sha256);
    if (known && known.status !== "failed") return { document: toKnowledgeDocument(known), created: false };
    if (known) await this.delete(tenantId, known.id);
    this.assertCapacity(tenantId, limits);
    const parsed = await this.parser.parse(format, input.bytes);
    // Checked again with no await before the insert: a concurrent identical upload may have won.
    const raced = this.findBySha(tenantId, sha256);
    if (raced) return { document: toKnowledgeDocument(raced), created: false };
    this.assertCapacity(tenantId, limits);
    const id = newId("doc");
    writeDurably(this.uploadPath(id), input.bytes);
    const title = input.title?.trim() || input.fileName?.split(/[\\/]/).pop() || "untitled";
    const document = this.options.db
      .insert(documents)
      .values({
        id, tenantId, title, format, sha256, sizeBytes: input.bytes.length, metadata: input.metadata ?? {}, status: "queued", warning: parsed.warning ?? null,
        chunkSize: policy.chunkSize, chunkOverlap: policy.chunkOverlap,
      })
      .returning()
      .get();
    this.parsed.set(id, parsed);
    return { document: toKnowledgeDocument(document), created: true };
  }

  async get(tenantId: string, documentId: string): Promise<KnowledgeDocument> {
    return toKnowledgeDocument(this.row(tenantId, documentId));
  }

  async list(tenantId: string, { limit = 100, offset = 0 } = {}): Promise<KnowledgeDocument[]> {
    return this.options.db.select().from(documents).where(eq(documents.tenantId, tenantId))
      .orderBy(desc(documents.createdAt), desc(documents.id)).limit(limit).offset(offset).all().map(toKnowledgeDocument);
  }

  async delete(tenantId: string, documentId: string): Promise<void> {
    this.row(tenantId, documentId);
    const index = await this.indexFor(tenantId);
    const ids = this.options.db.transaction(() => {
      const chunkIds = this.chunkStore.documentChunkIds(documentId);
      this.options.db.delete(documents).where(eq(documents.id, documentId)).run();
      return chunkIds;
    });
    for (const id of ids) index.remove(id);
    rmSync(this.uploadPath(documentId), { force: true });
    this.saveIndex(tenantId, index);
  }

  async search(tenantId: string, request: SearchRequest): Promise<SearchHit[]> {
    this.assertOpen();
    const { query, k = 5, mode = "hybrid", filter, groupBy = "chunk", maxChunksPerDocument } = request;
    if (typeof query !== "string" || query.trim() === "") throw new KnowledgeError("invalid_request", "query must be a non-empty string", "query");
    if (!Number.isInteger(k) || k < 1 || k > 100) throw new KnowledgeError("invalid_request", "k must be an integer from 1 to 100", "k");
    const fusion = fusionOf(request);
    const limit = perDocumentLimit(groupBy, maxChunksPerDocument);
    const allowedDocs = this.chunkStore.allowedDocuments(tenantId, filter);
    const depth = mode === "hybrid" || limit ? fusionDepth(k) : k;
    const expansion = expansionOf(request.expansion);
    const ranked = await this.rank(tenantId, mode, query, depth, allowedDocs, fusion, expansion);
    const top = limit ? limitPerDocument(ranked, this.chunkStore.documentsOf(tenantId, ranked.map((h) => h.label)), k, limit) : ranked.slice(0, k);
    const rows = this.chunkStore.hydrate(tenantId, top.map((h) => h.label));
    return top.filter((h) => rows.has(h.label)).map((h) => ({ ...rows.get(h.label)!, score: h.score }));
  }

  private async rank(tenantId: string, mode: SearchMode, query: string, depth: number, docs: string[] | undefined, fusion: Fusion, expansion: QueryExpansion): Promise<Scored[]> {
    if (mode !== "dense" && mode !== "bm25" && mode !== "hybrid") throw new KnowledgeError("invalid_request", "mode must be one of dense, bm25, hybrid", "mode");
    if (docs && docs.length === 0) return [];
    const keyword = () => (expansion === "rm3" ? this.rm3(tenantId, query, depth, docs) : this.chunkStore.bm25(tenantId, query, depth, docs));
    if (mode === "bm25") return keyword();
    const [queryVector] = await this.embedder.embed([query]);
    const dense = await this.dense(tenantId, queryVector, depth, docs);
    if (mode === "dense") return dense;
    return fuse(fusion.method, [dense, keyword()], [fusion.weights.dense, fusion.weights.bm25]);
  }

  /** BM25 with RM3 expansion (rm3.ts): a first pass's top chunks feed the weighted second pass. */
  private rm3(tenantId: string, query: string, depth: number, docs: string[] | undefined): Scored[] {
    const first = this.chunkStore.bm25(tenantId, query, DEFAULT_RM3.feedbackDocs, docs);
    if (first.length === 0) return first;
    const texts = new Map(this.chunkStore.chunkTexts(first.map((h) => h.label)).map((r) => [r.id, r.text]));
    const weights = rm3Weights(query, first.map((h) => ({ text: texts.get(h.label) ?? "", score: h.score })));
    return this.chunkStore.bm25Match(tenantId, weightedMatchExpression(weights), depth, docs);
  }

  private async dense(tenantId: string, vector: Float32Array, k: number, docs: string[] | undefined): Promise<VectorHit[]> {
    const index = await this.indexFor(tenantId);
    if (!docs) return index.search(vector, k);
    const allowed = this.chunkStore.chunkIdsOfDocuments(docs);
    if (allowed.length <= EXACT_SEARCH_MAX) return index.searchExact(vector, k, allowed);
    const set = new Set(allowed);
    return index.search(vector, k, (label) => set.has(label));
  }

  reindex(tenantId: string): Promise<number> {
    this.assertOpen();
    return this.jobs.run(tenantId, async () => {
      await this.indexFor(tenantId);
      const ids = this.chunkStore.chunkIds(tenantId);
      const fresh = VectorIndex.create(this.embedder.id, this.embedder.dimension, this.hnsw, Math.max(1024, ids.length));
      await this.embedInto(fresh, ids);
      // Documents deleted while embedding (deletes do not queue) must not come back.
      fresh.retainOnly(new Set(this.chunkStore.chunkIds(tenantId)));
      this.indexes.set(tenantId, Promise.resolve(fresh));
      this.saveIndex(tenantId, fresh);
      return fresh.size;
    });
  }

  idle(): Promise<void> {
    return this.jobs.idle();
  }

  async indexedChunkIds(tenantId: string): Promise<number[]> {
    return (await this.indexFor(tenantId)).labels().sort((a, b) => a - b);
  }

  /** Stops a running parse at once and embedding at the next batch boundary; unfinished documents stay queued and resume at the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.parser.close();
    await this.idle();
    for (const [tenantId, index] of this.indexes) if (this.dirty.has(tenantId)) this.saveIndex(tenantId, await index);
    if (this.options.ownsEmbedder) await this.embedder.close?.();
  }

  /**
   * Queues ingestion of stored uploads as one job; resolves when each has finished (ready or failed).
   * Documents go through in order, in groups that fill one embedding call (see ingestAll).
   */
  private scheduleIngest(tenantId: string, documentIds: string[]): Promise<void> {
    return this.jobs.run(tenantId, async () => {
      try {
        await this.ingestAll(tenantId, documentIds);
      } finally {
        for (const id of documentIds) this.parsed.take(id);
      }
      // Save once the tenant has nothing more queued: one write per burst of uploads.
      if (this.jobs.pendingFor(tenantId) === 1) await this.flushIndex(tenantId);
    });
  }

  /**
   * Small documents share embedding calls: consecutive documents join a group until it holds
   * `embedBatchSize` chunks, and a group is embedded, then committed, together (one transaction, its
   * documents `processing` meanwhile). A document larger than a call is a group of its own, as before.
   * A document that cannot be read or chunked fails alone; a group whose embedding fails is retried
   * one document at a time, so one bad document never fails the others.
   */
  private async ingestAll(tenantId: string, documentIds: string[]): Promise<void> {
    const callSize = this.embedBatchSize();
    let group: Prepared[] = [];
    let chunksInGroup = 0;
    for (const id of documentIds) {
      if (this.closed) return;
      const prepared = await this.failingAlone([id], () => this.prepare(id));
      if (!prepared) continue;
      group.push(prepared);
      chunksInGroup += prepared.chunks.length;
      if (chunksInGroup < callSize) continue;
      await this.ingestGroup(tenantId, group);
      group = [];
      chunksInGroup = 0;
    }
    if (group.length > 0) await this.ingestGroup(tenantId, group);
  }

  private async ingestGroup(tenantId: string, group: Prepared[]): Promise<void> {
    if (group.length === 1) {
      await this.failingAlone([group[0].id], () => this.embedAndCommit(tenantId, group));
      return;
    }
    try {
      await this.embedAndCommit(tenantId, group);
    } catch (err) {
      if (err instanceof ShuttingDown || this.closed) return;
      for (const doc of group) await this.failingAlone([doc.id], () => this.embedAndCommit(tenantId, [doc]));
    }
  }

  /** Runs `work`; when it throws, marks the documents failed, except when closing (then they resume at the next start). */
  private async failingAlone<T>(documentIds: string[], work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof ShuttingDown) && !this.closed) for (const id of documentIds) this.fail(id, err);
      return undefined;
    }
  }

  /** A queued document, parsed and chunked; undefined when it was deleted meanwhile. */
  private async prepare(documentId: string): Promise<Prepared | undefined> {
    const doc = this.options.db.select().from(documents).where(eq(documents.id, documentId)).get();
    if (!doc || this.closed) return undefined;
    const path = this.uploadPath(documentId);
    if (!existsSync(path)) throw new Error("the uploaded file was lost before ingestion");
    this.setProgress([documentId], 0);
    // Parsed by the upload, or (resumed after a restart, or past the cache's bound) parsed here under the same limits.
    const parsed = this.parsed.take(documentId) ?? (await this.parser.parse(doc.format as DocumentFormat, readFileSync(path)));
    const chunks = chunkDocument(parsed, this.chunking(doc), this.countTokens);
    const warning = parsed.warning ?? (chunks.length === 0 ? "the document holds no text to index" : null);
    return { id: documentId, chunks, warning };
  }

  private async embedAndCommit(tenantId: string, group: Prepared[]): Promise<void> {
    const ids = group.map((d) => d.id);
    this.setProgress(ids, 0);
    const vectors = await this.embedAll(group.flatMap((d) => d.chunks.map((c) => c.text)), (done) => this.setProgress(ids, 0.99 * done));
    const index = await this.indexFor(tenantId);
    // No await from the commit to the last add: a delete cannot slip in between and leave orphans.
    const committed = this.options.sqlite.transaction(() => group.map((d) => this.chunkStore.commitDocument(d.id, tenantId, d.chunks, d.warning)))();
    let at = 0;
    group.forEach((doc, i) => {
      const chunkIds = committed[i];
      chunkIds?.forEach((id, j) => index.add(id, vectors[at + j]));
      at += doc.chunks.length;
      if (chunkIds) this.dirty.add(tenantId);
      rmSync(this.uploadPath(doc.id), { force: true });
    });
  }

  private embedBatchSize(): number {
    return this.options.embedBatchSize ?? DEFAULT_EMBED_CALL;
  }

  private async embedAll(texts: string[], onProgress: (fraction: number) => void): Promise<Float32Array[]> {
    const batch = this.embedBatchSize();
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += batch) {
      if (this.closed) throw new ShuttingDown();
      out.push(...(await this.embedder.embed(texts.slice(i, i + batch))));
      onProgress(out.length / texts.length);
      // Let requests (and progress polls) run between batches even when the embedder never yields.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }

  private async embedInto(index: VectorIndex, ids: number[]): Promise<void> {
    const batch = 512;
    for (let i = 0; i < ids.length; i += batch) {
      const rows = this.chunkStore.chunkTexts(ids.slice(i, i + batch));
      const vectors = await this.embedAll(rows.map((r) => r.text), () => {});
      rows.forEach((r, j) => index.add(r.id, vectors[j]));
    }
  }

  /** The chunking the upload asked for, cut to what the embedder reads; overlap at most half a chunk. */
  private chunking({ chunkSize, chunkOverlap }: DocumentRow): ChunkingOptions {
    if (chunkSize === null || chunkOverlap === null) throw new Error("the upload recorded no chunking; upload the document again");
    const maxTokens = Math.max(8, Math.min(chunkSize, this.embedder.maxTokens ?? Infinity));
    return { maxTokens, overlapTokens: Math.min(chunkOverlap, Math.floor(maxTokens / 2)) };
  }

  private fail(documentId: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.options.db.update(documents).set({ status: "failed", error: message }).where(eq(documents.id, documentId)).run();
    rmSync(this.uploadPath(documentId), { force: true });
  }

  private setProgress(documentIds: string[], progress: number): void {
    this.options.db.update(documents).set({ status: "processing", progress }).where(inArray(documents.id, documentIds)).run();
  }

  private row(tenantId: string, documentId: string): DocumentRow {
    const row = this.options.db.select().from(documents).where(and(eq(documents.tenantId, tenantId), eq(documents.id, documentId))).get();
    if (!row) throw new KnowledgeError("not_found", `document "${documentId}" not found`, "id");
    return row;
  }

  private findBySha(tenantId: string, sha256: string): DocumentRow | undefined {
    return this.options.db.select().from(documents).where(and(eq(documents.tenantId, tenantId), eq(documents.sha256, sha256))).get();
  }

  /** Loads (once) the tenant's index and makes it agree with SQLite: drops orphans, embeds missing chunks. */
  private indexFor(tenantId: string): Promise<VectorIndex> {
    let index = this.indexes.get(tenantId);
    if (!index) {
      index = this.loadIndex(tenantId);
      this.indexes.set(tenantId, index);
    }
    return index;
  }

  private async loadIndex(tenantId: string): Promise<VectorIndex> {
    const { id, dimension } = this.embedder;
    const path = this.indexPath(tenantId);
    const index = VectorIndex.load(path, id, dimension) ?? VectorIndex.create(id, dimension, this.hnsw);
    const stored = this.chunkStore.chunkIds(tenantId);
    const orphans = index.retainOnly(new Set(stored));
    const missing = stored.filter((c) => !index.has(c));
    await this.embedInto(index, missing);
    if (orphans.length > 0 || missing.length > 0) this.saveIndex(tenantId, index);
    return index;
  }

  private async flushIndex(tenantId: string): Promise<void> {
    if (!this.dirty.has(tenantId)) return;
    this.saveIndex(tenantId, await this.indexFor(tenantId));
  }

  private saveIndex(tenantId: string, index: VectorIndex): void {
    index.save(this.indexPath(tenantId));
    this.dirty.delete(tenantId);
  }

  /** The policy's limits over the plane's defaults. */
  private limitsOf(policy: IngestPolicy): KnowledgeLimits {
    const defaults = { ...DEFAULT_LIMITS, ...this.options.limits };
    return {
      maxDocuments: policy.maxDocuments ?? defaults.maxDocuments,
      maxDocumentBytes: policy.maxDocumentBytes ?? defaults.maxDocumentBytes,
    };
  }

  private assertCapacity(tenantId: string, limits: KnowledgeLimits): void {
    const { count } = this.options.db.select({ count: sql<number>`count(*)` }).from(documents).where(eq(documents.tenantId, tenantId)).get()!;
    if (count >= limits.maxDocuments) {
      throw new KnowledgeError("too_large", `tenant already has ${count} documents; the limit maxDocuments is ${limits.maxDocuments}`, "file");
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("knowledge base is closed");
  }

  private indexPath(tenantId: string): string {
    return join(this.indexDir, `${encodeURIComponent(tenantId)}.hnsw`);
  }

  private uploadPath(documentId: string): string {
    return join(this.uploadDir, documentId);
  }
}

class ShuttingDown extends Error {}

/** A stored upload, parsed and chunked, waiting for its vectors. */
interface Prepared {
  id: string;
  chunks: Chunk[];
  warning: string | null;
}

/** A refused batch item's error, as the port carries it. */
function refusal(err: KnowledgeError): Extract<BatchItem, { ok: false }>["error"] {
  return { kind: err.kind as Extract<BatchItem, { ok: false }>["error"]["kind"], message: err.message, param: err.param ?? null };
}

/** What the port shows of a stored document. */
function toKnowledgeDocument(row: DocumentRow): KnowledgeDocument {
  const { id, tenantId, title, format, status, progress, chunkCount, sizeBytes, sha256, metadata, warning, error, createdAt } = row;
  return { id, tenantId, title, format, status, progress, chunkCount, sizeBytes, sha256, metadata, warning, error, createdAt };
}

interface Fusion {
  method: FusionMethod;
  weights: FusionWeights;
}

/** The request's fusion over DEFAULT_FUSION, validated. */
function fusionOf({ fusion, weights }: SearchRequest): Fusion {
  if (fusion !== undefined && !FUSION_METHODS.includes(fusion)) throw new KnowledgeError("invalid_request", `fusion must be one of ${FUSION_METHODS.join(", ")}`, "fusion");
  const merged = { dense: weights?.dense ?? DEFAULT_FUSION.weights.dense, bm25: weights?.bm25 ?? DEFAULT_FUSION.weights.bm25 };
  const valid = (w: unknown) => typeof w === "number" && Number.isFinite(w) && w >= 0;
  if (!valid(merged.dense) || !valid(merged.bm25) || merged.dense + merged.bm25 === 0) {
    throw new KnowledgeError("invalid_request", "weights.dense and weights.bm25 must be non-negative numbers, not both 0", "weights");
  }
  return { method: fusion ?? DEFAULT_FUSION.method, weights: merged };
}

function expansionOf(expansion: unknown): QueryExpansion {
  if (expansion !== undefined && !QUERY_EXPANSIONS.includes(expansion as never)) {
    throw new KnowledgeError("invalid_request", `expansion must be one of ${QUERY_EXPANSIONS.join(", ")}`, "expansion");
  }
  return (expansion as QueryExpansion | undefined) ?? "none";
}

function perDocumentLimit(groupBy: unknown, maxChunksPerDocument: unknown): PerDocumentLimit | undefined {
  if (!SEARCH_GROUPINGS.includes(groupBy as never)) throw new KnowledgeError("invalid_request", `group_by must be one of ${SEARCH_GROUPINGS.join(", ")}`, "group_by");
  if (groupBy === "document") return { max: 1, refill: false };
  if (maxChunksPerDocument === undefined) return undefined;
  if (!Number.isInteger(maxChunksPerDocument) || (maxChunksPerDocument as number) < 1) {
    throw new KnowledgeError("invalid_request", "max_chunks_per_document must be a positive integer", "max_chunks_per_document");
  }
  return { max: maxChunksPerDocument as number, refill: true };
}

function writeDurably(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, "w");
  try {
    writeFileSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

