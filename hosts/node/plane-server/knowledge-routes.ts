/**
 * The Knowledge port served over HTTP (the other side of clients/knowledge.ts). An upload's bytes are
 * the request body, read as a stream and refused (too_large) as soon as they pass the node's upload
 * limit (the plane then applies the policy's maxDocumentBytes); its other fields and the IngestPolicy come in one header.
 * A batch is one body (clients/wire/batch.ts) under the same cap.
 */
import type { Context, Hono } from "hono";
import { z } from "zod";
import { PlaneError } from "../../../ports/errors.ts";
import { DOCUMENT_FORMATS, type DocumentUpload, type Knowledge, type SearchRequest } from "../../../ports/knowledge.ts";
import type { UploadHeader } from "../../../clients/knowledge.ts";
import { decodeBatch } from "../../../clients/wire/batch.ts";
import { readCapped } from "../../../clients/wire/body.ts";
import { UPLOAD_HEADER } from "../../../clients/wire/routes.ts";
import { invalidNodeRequest, jsonBody } from "./node-app.ts";

export interface KnowledgeRouteOptions {
  /** The node's own cap on one upload's bytes. */
  maxUploadBytes: number;
  /** Makes the tenant known to this node's store (the edge owns tenants; the node only keys documents by them). */
  ensureTenant(tenantId: string): void;
}

const Policy = z.object({ chunkSize: z.number().int().min(1), chunkOverlap: z.number().int().min(0), maxDocuments: z.number().int().min(0).optional(), maxDocumentBytes: z.number().int().min(0).optional() });
const Header = z.object({
  fileName: z.string().optional(), mediaType: z.string().optional(), format: z.enum(DOCUMENT_FORMATS).optional(),
  title: z.string().optional(), metadata: z.record(z.string(), z.unknown()).optional(), policy: Policy,
});
const Batch = z.object({ policy: Policy, documents: z.array(Header.omit({ policy: true }).extend({ size: z.number().int().min(0) })) });
const Search = z.object({ query: z.string() }).passthrough();
const count = (v: string | undefined) => (v === undefined ? undefined : z.coerce.number().int().min(0).parse(v));

const invalid = (message: string) => invalidNodeRequest(message);

export function mountKnowledge(app: Hono, knowledge: () => Knowledge, options: KnowledgeRouteOptions): void {
  const base = "/v1/tenants/:tenant";
  app.post(`${base}/documents`, async (c) => {
    const tenant = c.req.param("tenant");
    const header = uploadHeader(c.req.header(UPLOAD_HEADER));
    // The node's cap stops a huge body early; the plane checks the policy's maxDocumentBytes itself (same error as in process).
    const bytes = await readUpload(c, options.maxUploadBytes);
    options.ensureTenant(tenant);
    const { policy, ...fields } = header;
    const result = await knowledge().upload(tenant, { ...fields, bytes }, policy);
    return c.json(result, result.created ? 201 : 200);
  });
  app.post(`${base}/documents/batch`, async (c) => {
    const tenant = c.req.param("tenant");
    const { policy, uploads } = batchBody(await readUpload(c, options.maxUploadBytes));
    options.ensureTenant(tenant);
    return c.json({ data: await knowledge().uploadBatch(tenant, uploads, policy) });
  });
  app.get(`${base}/documents`, async (c) => {
    let page;
    try {
      page = { limit: count(c.req.query("limit")), offset: count(c.req.query("offset")) };
    } catch {
      throw invalid("limit and offset are non-negative integers.");
    }
    return c.json({ data: await knowledge().list(c.req.param("tenant"), page) });
  });
  app.get(`${base}/documents/:id`, async (c) => c.json(await knowledge().get(c.req.param("tenant"), c.req.param("id"))));
  app.delete(`${base}/documents/:id`, async (c) => {
    await knowledge().delete(c.req.param("tenant"), c.req.param("id"));
    return c.body(null, 204);
  });
  app.post(`${base}/reindex`, async (c) => c.json({ vectors: await knowledge().reindex(c.req.param("tenant")) }));
  app.post(`${base}/search`, async (c) => {
    const parsed = Search.safeParse(await jsonBody(c));
    if (!parsed.success) throw invalid("A search needs a query string.");
    return c.json({ hits: await knowledge().search(c.req.param("tenant"), parsed.data as SearchRequest) });
  });
}

function uploadHeader(value: string | undefined): UploadHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(decodeURIComponent(value ?? ""));
  } catch {
    throw invalid(`An upload needs the ${UPLOAD_HEADER} header (URI-encoded JSON).`);
  }
  const parsed = Header.safeParse(raw);
  if (!parsed.success) throw invalid(`Invalid ${UPLOAD_HEADER}: ${parsed.error.issues[0]!.path.join(".")}: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

function batchBody(body: Uint8Array): { policy: z.output<typeof Policy>; uploads: DocumentUpload[] } {
  try {
    const { manifest, bytes } = decodeBatch(body);
    const { policy, documents } = Batch.parse(manifest);
    return { policy, uploads: documents.map(({ size, ...fields }) => ({ ...fields, bytes: bytes(size) })) };
  } catch (e) {
    throw invalid(`Invalid batch body: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The body's bytes, refused once they pass `limit` (before the rest is read). */
function readUpload(c: Context, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new PlaneError("too_large", `The document is larger than ${limit} bytes.`, { code: "document_too_large" });
  if (Number(c.req.header("content-length") ?? 0) > limit) throw tooLarge();
  return readCapped(c.req.raw.body, limit, tooLarge);
}
