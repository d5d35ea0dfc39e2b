/**
 * The plane nodes' HTTP routes, named once for both sides. Inference: model, encode, generate (NDJSON
 * lines `{ "event": GenerateEvent }`, or a final `{ "error": WireError }`), load (wire/load.ts). Knowledge: per tenant,
 * documents (upload body = the raw bytes, the rest in the UPLOAD_HEADER), reindex, search.
 */
export const INFERENCE_ROUTES = { model: "/v1/model", encode: "/v1/encode", generate: "/v1/generate", load: "/v1/node/load" } as const;

export const tenantPath = (tenantId: string) => `/v1/tenants/${encodeURIComponent(tenantId)}`;

/** The upload's fields other than its bytes, as URI-encoded JSON (`UploadHeader`). */
export const UPLOAD_HEADER = "x-switchyard-upload";

export const NODE_HEALTH = { live: "/healthz", ready: "/readyz", metrics: "/metrics" } as const;

/**
 * The control node's routes (`switchyard serve trainer --port N`): fine-tuning jobs and files per
 * tenant, and the adapter catalog, whose viewer travels as `?tenant=ID` or `?admin=1` (wire/viewer.ts).
 * Uploads send the bytes as the body and their other fields in the UPLOAD_HEADER; an archive's or a
 * file's bytes come back as the response body (an archive's adapter in the ADAPTER_HEADER).
 */
export const jobsPath = (tenantId: string) => `${tenantPath(tenantId)}/fine-tuning/jobs`;
export const jobPath = (tenantId: string, jobId: string) => `${jobsPath(tenantId)}/${encodeURIComponent(jobId)}`;
export const filesPath = (tenantId: string) => `${tenantPath(tenantId)}/files`;
export const filePath = (tenantId: string, fileId: string) => `${filesPath(tenantId)}/${encodeURIComponent(fileId)}`;

export const ADAPTER_ROUTES = { list: "/v1/catalog/adapters", base: "/v1/catalog/base", resolve: "/v1/catalog/resolve" } as const;
export const adapterPath = (id: string) => `${ADAPTER_ROUTES.list}/${encodeURIComponent(id)}`;

/** The adapter (AdapterInfo as URI-encoded JSON) an archive response belongs to. */
export const ADAPTER_HEADER = "x-switchyard-adapter";
/** A content response's body is adapter_config.json then adapter_model.safetensors; this header gives the first one's length. */
export const CONFIG_LENGTH_HEADER = "x-switchyard-config-length";
