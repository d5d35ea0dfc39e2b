/**
 * The Files port over HTTP: the control node (`switchyard serve trainer --port N`). An upload sends the
 * file's bytes as the body and its name and purpose in the upload header; the node validates it whole
 * (against the model's tokenizer) before storing anything. `content` reads the response body under
 * `maxDownloadBytes`; `contentStream` hands it on as a stream. Reads are retried on a node that did
 * nothing; upload and delete are sent once.
 */
import { PlaneError } from "../ports/errors.ts";
import type { FileListQuery, FileObject, FilePage, FilePurpose, FileUpload, Files } from "../ports/files.ts";
import type { ControlClientOptions } from "./adapters.ts";
import { NodeClient } from "./node-call.ts";
import { DEFAULT_MAX_DOWNLOAD_BYTES, readCapped } from "./wire/body.ts";
import { filePath, filesPath, UPLOAD_HEADER } from "./wire/routes.ts";
import { encodeHeaderJson } from "./wire/header-json.ts";

/** What the file upload header carries besides the bytes. */
export interface FileUploadHeader {
  filename: string;
  purpose: FilePurpose;
}

export class HttpFiles implements Files {
  private readonly node: NodeClient;
  private readonly maxDownload: number;

  constructor(options: ControlClientOptions) {
    this.node = new NodeClient(options);
    this.maxDownload = options.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  }

  upload({ tenantId, filename, purpose, bytes }: FileUpload): Promise<FileObject> {
    const header: FileUploadHeader = { filename, purpose };
    return this.node.json({
      method: "POST",
      path: filesPath(tenantId),
      body: bytes,
      headers: { "content-type": "application/octet-stream", [UPLOAD_HEADER]: encodeHeaderJson(header) },
      idempotent: false,
    });
  }

  list(tenantId: string, query: FileListQuery = {}): Promise<FilePage> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const suffix = params.size > 0 ? `?${params}` : "";
    return this.node.json({ method: "GET", path: `${filesPath(tenantId)}${suffix}`, idempotent: true });
  }

  get(tenantId: string, id: string): Promise<FileObject> {
    return this.node.json({ method: "GET", path: filePath(tenantId, id), idempotent: true });
  }

  async contentStream(tenantId: string, id: string): Promise<ReadableStream<Uint8Array>> {
    const response = await this.node.call({ method: "GET", path: `${filePath(tenantId, id)}/content`, idempotent: true });
    return response.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  async content(tenantId: string, id: string): Promise<Uint8Array> {
    const limit = this.maxDownload;
    const tooLarge = () => new PlaneError("too_large", `The file is larger than this client's download limit of ${limit} bytes.`, { code: "download_too_large" });
    return readCapped(await this.contentStream(tenantId, id), limit, tooLarge);
  }

  delete(tenantId: string, id: string): Promise<FileObject> {
    return this.node.json({ method: "DELETE", path: filePath(tenantId, id), idempotent: false });
  }
}
