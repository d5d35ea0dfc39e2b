import type { Context } from "hono";
import { Hono } from "hono";
import { checkAdapterFiles, extractAdapterArchive, rejectPickle, type AdapterFiles } from "../../services/adapters/archive.ts";
import { AdapterError } from "../../services/adapters/errors.ts";
import type { AdapterRegistry, Viewer } from "../../services/adapters/registry.ts";
import type { Adapter } from "../../services/store/schema.ts";
import type { AppEnv } from "../env.ts";
import { ApiError, badRequest, payloadTooLarge, planeApiError, unsupportedMediaType } from "../errors.ts";
import { PlaneError } from "../../ports/errors.ts";
import { describe } from "../middleware/body.ts";
import { readMultipart, type Form } from "../middleware/multipart.ts";

export type AdapterStore = Pick<AdapterRegistry, "create" | "list" | "get" | "delete" | "setDefault" | "findByName" | "defaultFor" | "baseModelId">;

export interface AdapterRouteDeps {
  registry: AdapterStore;
  /** Largest upload (archive or the two files), also the decompressed-size limit. */
  maxUploadBytes: number;
}

/** An adapter as the API shows it. */
export function adapterJson(a: Adapter) {
  return {
    id: a.id,
    object: "adapter",
    name: a.name,
    version: a.version,
    public: a.tenantId === null,
    owned_by: a.tenantId ?? "public",
    base_model: a.baseModel,
    rank: a.rank,
    alpha: a.alpha,
    target_modules: a.targetModules,
    sha256: a.sha256,
    size_bytes: a.sizeBytes,
    status: a.status,
    created_at: Math.floor(a.createdAt / 1000),
  };
}

/** Runs `run`, naming `param` in a refused adapter's HTTP error. */
export async function translated<T>(run: () => Promise<T> | T, param: string | null = null): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw e instanceof PlaneError ? planeApiError(e, param) : e;
  }
}

export function viewerOf(c: Context<AppEnv>): Viewer {
  return c.get("role") === "admin" ? { admin: true } : { tenantId: c.get("tenant").id };
}

/** Adapter management, mounted at /v1/adapters. */
export function adapterRoutes(deps: AdapterRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["adapters"];
  const { registry } = deps;

  app.post(
    "/",
    describe({
      summary:
        "Upload a PEFT LoRA adapter: multipart with `file` (a .zip or .tar.gz of the adapter folder) or `adapter_config` + `adapter_model` files, and `name`; or the archive itself as the body (application/zip, application/gzip, application/x-tar) with `?name=`. Uploading an existing name creates its next version.",
      tags,
    }),
    async (c) => {
      const upload = await readUpload(c, deps.maxUploadBytes);
      if (upload.isPublic && c.get("role") !== "admin") throw new ApiError(403, "Only an admin can upload a public adapter.", "permission_error", "public", "forbidden");
      const tenantId = upload.isPublic ? null : c.get("tenant")?.id;
      if (tenantId === undefined) throw badRequest("An admin upload without a tenant must set public=true.", "public");
      if (!upload.name) throw badRequest("Missing field 'name'.", "name", "missing_field");
      const files = await translated(upload.files, "file");
      const row = await translated(() => registry.create({ tenantId, name: upload.name, files }), "file");
      return c.json(adapterJson(row), 201);
    },
  );

  app.get("/", describe({ summary: "Adapters the caller may use: its own and public ones.", tags }), (c) =>
    c.json({ object: "list", data: registry.list(viewerOf(c)).map(adapterJson) }),
  );

  app.get("/:id", describe({ summary: "One adapter.", tags }), async (c) =>
    c.json(adapterJson(await translated(() => registry.get(c.req.param("id"), viewerOf(c)), "id"))),
  );

  app.delete("/:id", describe({ summary: "Delete an adapter; requests already using it finish first.", tags }), async (c) => {
    const row = await translated(() => registry.delete(c.req.param("id"), viewerOf(c)), "id");
    return c.json({ id: row.id, object: "adapter.deleted", deleted: true });
  });

  app.post("/:id/default", describe({ summary: "Make this adapter the caller's default for requests that name no adapter.", tags }), async (c) => {
    const tenant = c.get("tenant");
    if (!tenant) throw badRequest("Only a tenant can set its default adapter.");
    const id = c.req.param("id");
    await translated(() => registry.setDefault(tenant.id, id), "id");
    return c.json({ object: "tenant.default_adapter", tenant_id: tenant.id, default_adapter: id });
  });

  return app;
}

interface Upload {
  name: string;
  isPublic: boolean;
  /** Reads and extracts lazily, so the cheap checks on the fields answer first. */
  files: () => Promise<AdapterFiles>;
}

const ARCHIVE_TYPES = /^application\/(zip|gzip|x-gzip|x-tar|octet-stream)\b/i;
const truthy = (v: unknown) => v === "true" || v === "1";

async function readUpload(c: Context<AppEnv>, maxBytes: number): Promise<Upload> {
  const type = c.req.header("content-type") ?? "";
  if (ARCHIVE_TYPES.test(type)) {
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (body.byteLength > maxBytes) throw payloadTooLarge(`The archive is larger than the upload limit of ${maxBytes} bytes.`);
    return { name: (c.req.query("name") ?? "").trim(), isPublic: truthy(c.req.query("public")), files: () => extractAdapterArchive(body, maxBytes) };
  }
  if (!/^multipart\/form-data/i.test(type)) {
    throw unsupportedMediaType(`Expected multipart/form-data or an archive (application/zip, application/gzip, application/x-tar), got ${type ? JSON.stringify(type) : "none"}.`);
  }
  const form = await readMultipart(c);
  const name = typeof form.name === "string" ? form.name.trim() : "";
  return { name, isPublic: truthy(form.public), files: () => uploadedFiles(form, maxBytes) };
}

function fileField(form: Form, field: string): File | undefined {
  const value = form[field];
  if (value === undefined) return undefined;
  if (Array.isArray(value) || typeof value === "string") throw badRequest(`Form field '${field}' must be a single file.`, field);
  return value;
}

async function bytesOf(file: File, maxBytes: number): Promise<Uint8Array> {
  if (file.size > maxBytes) throw payloadTooLarge(`'${file.name}' is larger than the upload limit of ${maxBytes} bytes.`);
  return new Uint8Array(await file.arrayBuffer());
}

async function uploadedFiles(form: Form, maxBytes: number): Promise<AdapterFiles> {
  const archive = fileField(form, "file");
  if (archive) return extractAdapterArchive(await bytesOf(archive, maxBytes), maxBytes);
  const config = fileField(form, "adapter_config");
  const model = fileField(form, "adapter_model");
  if (model?.name.endsWith(".bin")) rejectPickle();
  if (!config || !model) {
    throw new AdapterError("missing_file", "Upload either 'file' (a .zip or .tar.gz adapter folder) or both 'adapter_config' and 'adapter_model'.");
  }
  return checkAdapterFiles({ config: await bytesOf(config, maxBytes), model: await bytesOf(model, maxBytes) }, maxBytes);
}
