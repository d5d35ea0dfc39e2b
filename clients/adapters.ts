/**
 * The AdapterCatalog port over HTTP: the control node (`switchyard serve trainer --port N`), which owns
 * the catalog. The viewer travels in the query (wire/viewer.ts). Uploads send the bytes as the body
 * (an archive, or adapter_config.json then the model file, the split in the upload header); downloads
 * come back as the response body, read under `maxDownloadBytes`, or handed on as a stream by
 * `archiveStream` (for a host that passes them through unbuffered). Reads and resolve are retried on a
 * node that did nothing; upload and delete are sent once (a retry could store a second version, or
 * answer not_found for a delete the first attempt did).
 */
import { PlaneError } from "../ports/errors.ts";
import type { AdapterArchive, AdapterArchiveFormat, AdapterArchiveStream, AdapterCatalog, AdapterContent, AdapterInfo, AdapterUpload, ResolvedModel, Viewer } from "../ports/adapters.ts";
import { NodeClient, type NodeClientOptions } from "./node-call.ts";
import { DEFAULT_MAX_DOWNLOAD_BYTES, readCapped } from "./wire/body.ts";
import { ADAPTER_HEADER, ADAPTER_ROUTES, adapterPath, CONFIG_LENGTH_HEADER, UPLOAD_HEADER } from "./wire/routes.ts";
import { decodeHeaderJson, encodeHeaderJson } from "./wire/header-json.ts";
import { viewerQuery } from "./wire/viewer.ts";

export interface ControlClientOptions extends NodeClientOptions {
  /** Most bytes one download (archive, content) is read into memory; default 128 MiB. */
  maxDownloadBytes?: number;
}

/** What the adapter upload header carries besides the bytes. */
export type AdapterUploadHeader =
  | { tenantId: string | null; name: string; source: "archive" }
  | { tenantId: string | null; name: string; source: "files"; configBytes: number; modelFileName?: string }
  | { tenantId: string | null; name: string; source: "path"; path: string };

const JSON_HEADERS = { "content-type": "application/json" };

export class HttpAdapterCatalog implements AdapterCatalog {
  private readonly node: NodeClient;
  private readonly maxDownload: number;

  constructor(options: ControlClientOptions) {
    this.node = new NodeClient(options);
    this.maxDownload = options.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  }

  baseModel(): Promise<string> {
    return this.node.json<{ id: string }>({ method: "GET", path: ADAPTER_ROUTES.base, idempotent: true }).then((r) => r.id);
  }

  list(viewer: Viewer): Promise<AdapterInfo[]> {
    return this.node.json<{ data: AdapterInfo[] }>({ method: "GET", path: `${ADAPTER_ROUTES.list}?${viewerQuery(viewer)}`, idempotent: true }).then((r) => r.data);
  }

  get(id: string, viewer: Viewer): Promise<AdapterInfo> {
    return this.node.json({ method: "GET", path: `${adapterPath(id)}?${viewerQuery(viewer)}`, idempotent: true });
  }

  resolve(model: string | undefined, tenantId: string, defaultAdapter?: string | null): Promise<ResolvedModel> {
    const body = JSON.stringify({ model: model ?? null, tenantId, defaultAdapter: defaultAdapter ?? null });
    return this.node.json({ method: "POST", path: ADAPTER_ROUTES.resolve, body, headers: JSON_HEADERS, idempotent: true });
  }

  async archiveStream(id: string, viewer: Viewer, format: AdapterArchiveFormat): Promise<AdapterArchiveStream> {
    const query = viewerQuery(viewer);
    query.set("format", format);
    const response = await this.node.call({ method: "GET", path: `${adapterPath(id)}/archive?${query}`, idempotent: true });
    return { adapter: adapterOf(response), format, body: response.body ?? emptyStream() };
  }

  async archive(id: string, viewer: Viewer, format: AdapterArchiveFormat): Promise<AdapterArchive> {
    const { adapter, body } = await this.archiveStream(id, viewer, format);
    return { adapter, format, bytes: await readCapped(body, this.maxDownload, () => tooLarge(this.maxDownload)) };
  }

  async content(id: string, viewer: Viewer): Promise<AdapterContent> {
    const response = await this.node.call({ method: "GET", path: `${adapterPath(id)}/content?${viewerQuery(viewer)}`, idempotent: true });
    const split = Number(response.headers.get(CONFIG_LENGTH_HEADER));
    const bytes = await readCapped(response.body, this.maxDownload, () => tooLarge(this.maxDownload));
    if (!Number.isInteger(split) || split < 0 || split > bytes.byteLength) throw malformed(`its ${CONFIG_LENGTH_HEADER} header is missing or wrong`);
    return { config: bytes.slice(0, split), model: bytes.slice(split) };
  }

  upload(upload: AdapterUpload): Promise<AdapterInfo> {
    const { header, body } = uploadWire(upload);
    return this.node.json({
      method: "POST",
      path: ADAPTER_ROUTES.list,
      body,
      headers: { "content-type": "application/octet-stream", [UPLOAD_HEADER]: encodeHeaderJson(header) },
      idempotent: false,
    });
  }

  delete(id: string, viewer: Viewer): Promise<AdapterInfo> {
    return this.node.json({ method: "DELETE", path: `${adapterPath(id)}?${viewerQuery(viewer)}`, idempotent: false });
  }
}

function uploadWire({ tenantId, name, source }: AdapterUpload): { header: AdapterUploadHeader; body?: BodyInit } {
  if ("archive" in source) return { header: { tenantId, name, source: "archive" }, body: source.archive };
  if ("path" in source) return { header: { tenantId, name, source: "path", path: source.path } };
  const body = new Blob([source.config, source.model]);
  return { header: { tenantId, name, source: "files", configBytes: source.config.byteLength, modelFileName: source.modelFileName }, body };
}

function adapterOf(response: Response): AdapterInfo {
  const info = decodeHeaderJson(response.headers.get(ADAPTER_HEADER));
  if (typeof info !== "object" || info === null || typeof (info as { id?: unknown }).id !== "string") throw malformed(`its ${ADAPTER_HEADER} header is missing`);
  return info as AdapterInfo;
}

function tooLarge(limit: number): PlaneError {
  return new PlaneError("too_large", `The download is larger than this client's limit of ${limit} bytes.`, { code: "download_too_large" });
}

function malformed(why: string): PlaneError {
  return new PlaneError("unavailable", `The control node's answer is malformed: ${why}.`, { code: "node_error" });
}

function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (c) => c.close() });
}
