import { Hono, type Context } from "hono";
import { z } from "zod";
import { FusionWeightsField } from "../chat/retrieval-options.ts";
import { DOCUMENT_FORMATS, FUSION_METHODS, QUERY_EXPANSIONS, SEARCH_GROUPINGS, type BatchItem, type DocumentUpload, type Knowledge, type KnowledgeDocument, type SearchHit } from "../../ports/knowledge.ts";
import type { AppEnv } from "../env.ts";
import { badRequest, planeApiError, unsupportedMediaType } from "../errors.ts";
import { PlaneError } from "../../ports/errors.ts";
import { ingestPolicy } from "../tenant-settings.ts";
import { describe, jsonBody, queryParams, readJson, schemaError } from "../middleware/body.ts";
import { readMultipart } from "../middleware/multipart.ts";

const Metadata = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]));

const JsonDocument = z.object({
  title: z.string().max(500).optional(),
  text: z.string().min(1),
  format: z.enum(DOCUMENT_FORMATS).exclude(["pdf"]).default("text"),
  metadata: Metadata.default({}),
});

/** JSON batches are capped by the JSON body limit (1 MiB by default); larger collections go as multipart. */
const JsonBatch = z.object({ documents: z.array(JsonDocument).min(1) });

const ProgressBody = z.object({ ids: z.array(z.string()).min(1).max(1000) });

const SearchBody = z.object({
  query: z.string().min(1).max(8000),
  k: z.number().int().min(1).max(100).default(5),
  mode: z.enum(["dense", "bm25", "hybrid"]).default("hybrid"),
  /** Hybrid: how the two lists merge, and their weights (default: the plane's, README "Retrieval quality"). */
  fusion: z.enum(FUSION_METHODS).optional(),
  weights: FusionWeightsField.optional(),
  /** BM25 and hybrid: RM3 pseudo-relevance feedback on the keyword query (default none). */
  expansion: z.enum(QUERY_EXPANSIONS).default("none"),
  /** `document`: k distinct documents, each as its best chunk. */
  group_by: z.enum(SEARCH_GROUPINGS).default("chunk"),
  max_chunks_per_document: z.number().int().min(1).max(100).optional(),
  filter: z.object({ document_ids: z.array(z.string()).max(1000).optional(), metadata: Metadata.optional() }).strict().optional(),
});

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

/** The tenant's knowledge base, mounted at /v1/knowledge behind auth. */
export function knowledgeRoutes(kb: Knowledge): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["knowledge"];

  app.post("/documents", describe({ summary: "Upload a document (multipart `file`, or JSON {title, text, metadata}).", tags, body: JsonDocument }), async (c) => {
    const input = await readUpload(c);
    const tenant = c.get("tenant");
    const { document, created } = await kb.upload(tenant.id, input, ingestPolicy(tenant));
    const status = !created ? 200 : document.status === "ready" ? 201 : 202;
    return c.json(documentView(document), status);
  });

  app.post("/documents/batch", describe({ summary: "Upload many documents as one unit of ingestion (multipart: repeated `file` fields, each a document or a .zip/.tar/.tar.gz archive of documents; JSON: {documents: [...]}); per-document statuses.", tags, body: JsonBatch }), async (c) => {
    const tenant = c.get("tenant");
    const items = await kb.uploadBatch(tenant.id, await readBatch(c), ingestPolicy(tenant));
    const data = items.map((item, index) => batchItemView(item, index));
    const accepted = data.filter((d) => d.status !== "refused").length;
    return c.json({ object: "knowledge.batch", accepted, refused: data.length - accepted, data }, items.some((i) => i.ok && i.created) ? 202 : 200);
  });

  app.post("/documents/progress", describe({ summary: "Ingestion progress of a set of documents (e.g. a batch): overall fraction, counts by status, and each document.", tags, body: ProgressBody }), jsonBody(ProgressBody), async (c) => {
    const tenantId = c.get("tenant").id;
    const docs = await Promise.all(c.req.valid("json").ids.map((id) => kb.get(tenantId, id)));
    const counts = { queued: 0, processing: 0, ready: 0, failed: 0 };
    for (const d of docs) counts[d.status]++;
    const settled = (d: KnowledgeDocument) => d.status === "ready" || d.status === "failed";
    const progress = docs.reduce((sum, d) => sum + (settled(d) ? 1 : d.progress), 0) / docs.length;
    return c.json({ object: "knowledge.progress", progress, done: counts.ready + counts.failed === docs.length, counts, data: docs.map(documentView) });
  });

  app.get("/documents", describe({ summary: "List the tenant's documents, newest first.", tags }), queryParams(ListQuery), async (c) => {
    const data = (await kb.list(c.get("tenant").id, c.req.valid("query"))).map(documentView);
    return c.json({ object: "list", data });
  });

  app.get("/documents/:id", describe({ summary: "A document with its ingestion status and progress.", tags }), async (c) =>
    c.json(documentView(await kb.get(c.get("tenant").id, c.req.param("id")))),
  );

  app.delete("/documents/:id", describe({ summary: "Delete a document and its chunks from every index.", tags }), async (c) => {
    const id = c.req.param("id");
    await kb.delete(c.get("tenant").id, id);
    return c.json({ id, object: "knowledge.document.deleted", deleted: true });
  });

  app.post("/search", describe({ summary: "Search the tenant's chunks (dense, BM25 or hybrid), or its documents by their best chunk (group_by: document).", tags }), jsonBody(SearchBody), async (c) => {
    const { query, k, mode, fusion, weights, expansion, group_by: groupBy, max_chunks_per_document: maxChunksPerDocument, filter } = c.req.valid("json");
    const filters = filter && { documentIds: filter.document_ids, metadata: filter.metadata };
    const hits = await kb.search(c.get("tenant").id, { query, k, mode, fusion, weights, expansion, groupBy, maxChunksPerDocument, filter: filters });
    return c.json({ object: "list", mode, group_by: groupBy, data: hits.map(hitView) });
  });

  app.post("/reindex", describe({ summary: "Re-embed every stored chunk into a fresh index.", tags }), async (c) => {
    const vectors = await kb.reindex(c.get("tenant").id);
    return c.json({ object: "knowledge.reindex", vectors });
  });

  return app;
}

async function readUpload(c: Context<AppEnv>): Promise<DocumentUpload> {
  const type = c.req.header("content-type") ?? "";
  if (/^multipart\/form-data/i.test(type)) {
    const form = await readMultipart(c);
    const file = form.file;
    if (!(file instanceof File)) throw badRequest("Multipart uploads need one `file` field holding the document.", "file");
    if (Array.isArray(form.metadata) || form.metadata instanceof File) throw badRequest("`metadata` must be one JSON text field.", "metadata");
    const metadata = form.metadata === undefined ? {} : parseMetadata(form.metadata);
    const title = typeof form.title === "string" ? form.title : undefined;
    return { bytes: new Uint8Array(await file.arrayBuffer()), fileName: file.name, mediaType: file.type, title, metadata };
  }
  if (!/^application\/json\b/i.test(type)) {
    throw unsupportedMediaType(`Upload a document as multipart/form-data (field \`file\`) or application/json, not ${JSON.stringify(type || "no content type")}.`);
  }
  const parsed = JsonDocument.safeParse(await readJson(c));
  if (!parsed.success) throw schemaError(parsed.error);
  const { title, text, format, metadata } = parsed.data;
  return { bytes: new TextEncoder().encode(text), format, title, metadata };
}

/** A batch's documents: every multipart `file` field (a shared `metadata` field applies to each), or the JSON `documents` array. */
async function readBatch(c: Context<AppEnv>): Promise<DocumentUpload[]> {
  const type = c.req.header("content-type") ?? "";
  if (/^multipart\/form-data/i.test(type)) {
    const form = await readMultipart(c);
    const files = [form.file ?? []].flat();
    if (files.length === 0 || files.some((f) => !(f instanceof File))) throw badRequest("Multipart batches need one or more `file` fields, each holding a document.", "file");
    if (Array.isArray(form.metadata) || form.metadata instanceof File) throw badRequest("`metadata` must be one JSON text field.", "metadata");
    const metadata = form.metadata === undefined ? {} : parseMetadata(form.metadata);
    return Promise.all((files as File[]).map(async (file) => ({ bytes: new Uint8Array(await file.arrayBuffer()), fileName: file.name, mediaType: file.type, metadata })));
  }
  if (!/^application\/json\b/i.test(type)) {
    throw unsupportedMediaType(`Upload a batch as multipart/form-data (fields \`file\`) or application/json ({documents: [...]}), not ${JSON.stringify(type || "no content type")}.`);
  }
  const parsed = JsonBatch.safeParse(await readJson(c));
  if (!parsed.success) throw schemaError(parsed.error);
  return parsed.data.documents.map(({ title, text, format, metadata }) => ({ bytes: new TextEncoder().encode(text), format, title, metadata }));
}

/**
 * `queued`: stored, ingestion pending; `exists`: identical content was already stored; `refused`: this
 * document only, with why. `file_index`: the upload (multipart file or JSON document) it answers;
 * `entry`: the path inside that upload when it is an archive, else null.
 */
function batchItemView(item: BatchItem, index: number) {
  const source = { file_index: item.upload, entry: item.entry ?? null };
  if (item.ok) return { index, ...source, status: item.created ? ("queued" as const) : ("exists" as const), document: documentView(item.document), error: null };
  const { status, ...error } = planeErrorView(item.error);
  return { index, ...source, status: "refused" as const, document: null, http_status: status, error };
}

function planeErrorView({ kind, message, param }: Extract<BatchItem, { ok: false }>["error"]) {
  const api = planeApiError(new PlaneError(kind, message, { param: param ?? undefined }));
  return { status: api.status, ...api.toBody().error };
}

function parseMetadata(raw: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw badRequest("`metadata` must be a JSON object.", "metadata");
  }
  const parsed = Metadata.safeParse(value);
  if (!parsed.success) throw badRequest("`metadata` must be a JSON object of strings, numbers, booleans or nulls.", "metadata");
  return parsed.data;
}

function documentView(d: KnowledgeDocument) {
  return {
    id: d.id,
    object: "knowledge.document",
    title: d.title,
    format: d.format,
    status: d.status,
    progress: d.progress,
    chunk_count: d.chunkCount,
    size_bytes: d.sizeBytes,
    sha256: d.sha256,
    metadata: d.metadata,
    warning: d.warning,
    error: d.error,
    created_at: Math.floor(d.createdAt / 1000),
  };
}

function hitView(h: SearchHit) {
  return {
    chunk_id: h.chunkId,
    document_id: h.documentId,
    title: h.title,
    text: h.text,
    score: h.score,
    position: h.position,
    heading_path: h.headingPath,
    start_offset: h.startOffset,
    end_offset: h.endOffset,
    metadata: h.metadata,
  };
}
