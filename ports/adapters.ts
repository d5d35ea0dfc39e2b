/**
 * The adapter catalog port: a node's adapters (LoRA or prompt tuning) as the edge sees them. Serving never takes weights
 * through it (the inference plane loads them itself by id); `content` hands out the stored PEFT files
 * (the trainer continuing an adapter, downloads).
 */

/** What an adapter name may be (vLLM's lora_name too). */
export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The PEFT adapter types a node serves: LORA and PROMPT_TUNING. */
export type AdapterKind = "lora" | "prompt_tuning";

/** Who is asking: a tenant sees its own adapters and public ones; an admin sees all. */
export type Viewer = { tenantId: string } | { admin: true };

export interface AdapterInfo {
  id: string;
  /** null for a public adapter. */
  tenantId: string | null;
  name: string;
  version: number;
  baseModel: string;
  /** "lora", or "prompt_tuning": N trained virtual-token embeddings put before the prompt. */
  kind: AdapterKind;
  /** LoRA only (0, 0 and [] for prompt tuning). */
  rank: number;
  alpha: number;
  targetModules: string[];
  /** Prompt tuning only, else null. */
  numVirtualTokens: number | null;
  sha256: string;
  sizeBytes: number;
  status: "ready" | "deleted";
  /** Where it was loaded from (vLLM's lora_path), else its folder in the node's storage. */
  root: string;
  /** Unix ms. */
  createdAt: number;
}

/** What an upload holds: a .zip/.tar(.gz) of the adapter folder, the two PEFT files, or a path inside the node's LoRA folder. */
export type AdapterSource =
  | { archive: Uint8Array }
  | { config: Uint8Array; model: Uint8Array; modelFileName?: string }
  | { path: string };

/** An adapter's stored PEFT files, as they were uploaded or published. */
export interface AdapterContent {
  /** adapter_config.json */
  config: Uint8Array;
  /** adapter_model.safetensors */
  model: Uint8Array;
}

export interface AdapterUpload {
  /** null: a public adapter (admins only; the edge checks). */
  tenantId: string | null;
  name: string;
  source: AdapterSource;
}

/** The archive formats an adapter downloads as (its PEFT folder). */
export const ADAPTER_ARCHIVE_FORMATS = ["zip", "tar.gz"] as const;
export type AdapterArchiveFormat = (typeof ADAPTER_ARCHIVE_FORMATS)[number];

/** A downloaded adapter: one folder `<name>-v<version>/` holding adapter_config.json and adapter_model.safetensors, which an upload accepts back unchanged. */
export interface AdapterArchive {
  adapter: AdapterInfo;
  format: AdapterArchiveFormat;
  bytes: Uint8Array;
}

/** A downloaded adapter as a byte stream: what a catalog across a network hands on without holding the archive whole. */
export interface AdapterArchiveStream {
  adapter: AdapterInfo;
  format: AdapterArchiveFormat;
  body: ReadableStream<Uint8Array>;
}

/** The OpenAI `model` field read for a tenant. */
export interface ResolvedModel {
  base: string;
  adapter?: AdapterInfo;
}

export interface AdapterCatalog {
  /** The node's base model id. */
  baseModel(): Promise<string>;
  /** Every ready adapter the viewer may use, by name then newest version first. */
  list(viewer: Viewer): Promise<AdapterInfo[]>;
  /** not_found when missing, deleted, or another tenant's. */
  get(id: string, viewer: Viewer): Promise<AdapterInfo>;
  /**
   * Reads `model`: `BASE`, `BASE:ADAPTER` or `ADAPTER`, where ADAPTER is an id, a name (the tenant's
   * own first, else public; newest version) or `name@version`. `BASE` or no model means
   * `defaultAdapter` when it is set and still usable. Anything else: not_found, code model_not_found.
   */
  resolve(model: string | undefined, tenantId: string, defaultAdapter?: string | null): Promise<ResolvedModel>;
  /** The adapter's PEFT folder as one archive; not_found as `get`. */
  archive(id: string, viewer: Viewer, format: AdapterArchiveFormat): Promise<AdapterArchive>;
  /** The same archive as a stream, where the catalog has one to give (an HTTP client); the edge's download prefers it. */
  archiveStream?(id: string, viewer: Viewer, format: AdapterArchiveFormat): Promise<AdapterArchiveStream>;
  /** The stored files of an adapter the viewer may use; not_found as `get`. */
  content(id: string, viewer: Viewer): Promise<AdapterContent>;
  /** Validates (size, archive, PEFT against the base) and stores; an existing name gets its next version. */
  upload(upload: AdapterUpload): Promise<AdapterInfo>;
  /** Deleted at once for new requests; files go when the last request using it ends. forbidden: a tenant deleting a public one. */
  delete(id: string, viewer: Viewer): Promise<AdapterInfo>;
}
