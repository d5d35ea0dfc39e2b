/**
 * The Knowledge port over HTTP: a plane node started by `switchyard serve retrieval`. An upload sends
 * the document's bytes as the request body and its other fields (and the IngestPolicy) in one header,
 * so the node reads the bytes as a stream under its size limit. Reads, search, delete and reindex are
 * retried on a node that did nothing; an upload is not (it is idempotent by content on the node, but
 * a retry could race the first attempt's ingest). A batch sends every document in one body (wire/batch.ts).
 */
import type { BatchItem, DocumentFormat, DocumentUpload, IngestPolicy, Knowledge, KnowledgeDocument, SearchHit, SearchRequest, UploadResult } from "../ports/knowledge.ts";
import { encodeBatch } from "./wire/batch.ts";
import { NodeClient, type NodeClientOptions } from "./node-call.ts";
import { tenantPath, UPLOAD_HEADER } from "./wire/routes.ts";

/** What the upload header carries. */
export interface UploadHeader {
  fileName?: string;
  mediaType?: string;
  format?: DocumentFormat;
  title?: string;
  metadata?: Record<string, unknown>;
  policy: IngestPolicy;
}

export const encodeUploadHeader = (header: UploadHeader) => encodeURIComponent(JSON.stringify(header));

export class HttpKnowledge implements Knowledge {
  private readonly node: NodeClient;

  constructor(options: NodeClientOptions) {
    this.node = new NodeClient(options);
  }

  upload(tenantId: string, upload: DocumentUpload, policy: IngestPolicy): Promise<UploadResult> {
    const { bytes, ...fields } = upload;
    return this.node.json<UploadResult>({
      method: "POST",
      path: `${tenantPath(tenantId)}/documents`,
      body: bytes,
      headers: { "content-type": "application/octet-stream", [UPLOAD_HEADER]: encodeUploadHeader({ ...fields, policy }) },
      idempotent: false,
    });
  }

  /** The batch in one body (clients/wire/batch.ts); not retried, as `upload`. */
  uploadBatch(tenantId: string, uploads: DocumentUpload[], policy: IngestPolicy): Promise<BatchItem[]> {
    return this.node
      .json<{ data: BatchItem[] }>({
        method: "POST",
        path: `${tenantPath(tenantId)}/documents/batch`,
        body: encodeBatch(uploads, policy),
        headers: { "content-type": "application/octet-stream" },
        idempotent: false,
      })
      .then((r) => r.data);
  }

  get(tenantId: string, documentId: string): Promise<KnowledgeDocument> {
    return this.node.json({ method: "GET", path: `${tenantPath(tenantId)}/documents/${encodeURIComponent(documentId)}`, idempotent: true });
  }

  list(tenantId: string, page: { limit?: number; offset?: number } = {}): Promise<KnowledgeDocument[]> {
    const query = new URLSearchParams();
    if (page.limit !== undefined) query.set("limit", String(page.limit));
    if (page.offset !== undefined) query.set("offset", String(page.offset));
    const suffix = query.size > 0 ? `?${query}` : "";
    return this.node.json<{ data: KnowledgeDocument[] }>({ method: "GET", path: `${tenantPath(tenantId)}/documents${suffix}`, idempotent: true }).then((r) => r.data);
  }

  async delete(tenantId: string, documentId: string): Promise<void> {
    await this.node.call({ method: "DELETE", path: `${tenantPath(tenantId)}/documents/${encodeURIComponent(documentId)}`, idempotent: true });
  }

  reindex(tenantId: string): Promise<number> {
    return this.node.json<{ vectors: number }>({ method: "POST", path: `${tenantPath(tenantId)}/reindex`, idempotent: true }).then((r) => r.vectors);
  }

  search(tenantId: string, request: SearchRequest): Promise<SearchHit[]> {
    return this.node
      .json<{ hits: SearchHit[] }>({ method: "POST", path: `${tenantPath(tenantId)}/search`, body: JSON.stringify(request), headers: { "content-type": "application/json" }, idempotent: true })
      .then((r) => r.hits);
  }
}
