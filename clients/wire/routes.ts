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
