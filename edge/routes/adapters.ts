import type { Context } from "hono";
import { Hono } from "hono";
import { ADAPTER_ARCHIVE_FORMATS, type AdapterArchiveFormat, type AdapterCatalog, type AdapterInfo, type AdapterSource, type Viewer } from "../../ports/adapters.ts";
import type { Tenants } from "../../ports/tenants.ts";
import type { AppEnv } from "../env.ts";
import { ApiError, badRequest, payloadTooLarge, unsupportedMediaType, withParam } from "../errors.ts";
import { describe } from "../middleware/body.ts";
import { readMultipart, type Form } from "../middleware/multipart.ts";

export interface AdapterRouteDeps {
  catalog: AdapterCatalog;
  /** Where a tenant's default adapter is set (and cleared when the adapter is deleted). */
  tenants: Pick<Tenants, "patchSettings" | "clearDefaultAdapter">;
  /** Largest HTTP upload (archive or each of the two files); the catalog applies its own limits after. */
  maxUploadBytes: number;
}

/** An adapter as the API shows it. */
export function adapterJson(a: AdapterInfo) {
  return {
    id: a.id,
    object: "adapter",
    name: a.name,
    version: a.version,
    public: a.tenantId === null,
    owned_by: a.tenantId ?? "public",
    base_model: a.baseModel,
    adapter_type: a.kind,
    rank: a.rank,
    alpha: a.alpha,
    target_modules: a.targetModules,
    num_virtual_tokens: a.numVirtualTokens,
    sha256: a.sha256,
    size_bytes: a.sizeBytes,
    status: a.status,
    created_at: Math.floor(a.createdAt / 1000),
  };
}

export function viewerOf(c: Context<AppEnv>): Viewer {
  return c.get("role") === "admin" ? { admin: true } : { tenantId: c.get("tenant").id };
}

/** Adapter management, mounted at /v1/adapters. */
export function adapterRoutes(deps: AdapterRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["adapters"];
  const { catalog, tenants } = deps;

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
      const source = await withParam("file", upload.source);
      const info = await withParam("file", () => catalog.upload({ tenantId, name: upload.name, source }));
      return c.json(adapterJson(info), 201);
    },
  );

  app.get("/", describe({ summary: "Adapters the caller may use: its own and public ones.", tags }), async (c) =>
    c.json({ object: "list", data: (await catalog.list(viewerOf(c))).map(adapterJson) }),
  );

  app.get("/:id", describe({ summary: "One adapter.", tags }), async (c) =>
    c.json(adapterJson(await withParam("id", () => catalog.get(c.req.param("id"), viewerOf(c))))),
  );

  app.get(
    "/:id/content",
    describe({
      summary:
        "Download the adapter's PEFT folder (`<name>-v<version>/adapter_config.json` and `adapter_model.safetensors`) as an archive: `?format=zip` (the default) or `tar.gz`, else by `Accept` (application/zip, application/gzip). Uploading the archive back gives the same weights.",
      tags,
    }),
    async (c) => {
      const format = archiveFormat(c.req.query("format"), c.req.header("accept"));
      const headers = (adapter: AdapterInfo) => ({
        "content-type": ARCHIVE_CONTENT_TYPES[format],
        "content-disposition": `attachment; filename="${adapter.name}-v${adapter.version}.${format}"`,
      });
      // A remote catalog's archive streams through, never held whole here.
      if (catalog.archiveStream) {
        const { adapter, body } = await withParam("id", () => catalog.archiveStream!(c.req.param("id"), viewerOf(c), format));
        return c.body(body, 200, headers(adapter));
      }
      const { adapter, bytes } = await withParam("id", () => catalog.archive(c.req.param("id"), viewerOf(c), format));
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { ...headers(adapter), "content-length": String(bytes.byteLength) });
    },
  );

  app.delete("/:id", describe({ summary: "Delete an adapter; requests already using it finish first.", tags }), async (c) => {
    const deleted = await deleteAdapter(deps, c.req.param("id"), viewerOf(c), "id");
    return c.json({ id: deleted.id, object: "adapter.deleted", deleted: true });
  });

  app.post("/:id/default", describe({ summary: "Make this adapter the caller's default for requests that name no adapter.", tags }), async (c) => {
    const tenant = c.get("tenant");
    if (!tenant) throw badRequest("Only a tenant can set its default adapter.");
    const id = c.req.param("id");
    await withParam("id", () => catalog.get(id, { tenantId: tenant.id }));
    await tenants.patchSettings(tenant.id, { defaultAdapter: id });
    return c.json({ object: "tenant.default_adapter", tenant_id: tenant.id, default_adapter: id });
  });

  return app;
}

/** Deletes through the catalog, then clears it as any tenant's default (the catalog does not touch tenants). */
export async function deleteAdapter(deps: { catalog: AdapterCatalog; tenants: Pick<Tenants, "clearDefaultAdapter"> }, id: string, viewer: Viewer, param: string): Promise<AdapterInfo> {
  const deleted = await withParam(param, () => deps.catalog.delete(id, viewer));
  await deps.tenants.clearDefaultAdapter(id);
  return deleted;
}

const ARCHIVE_CONTENT_TYPES: Record<AdapterArchiveFormat, string> = { zip: "application/zip", "tar.gz": "application/gzip" };

/** `?format=` wins; else the first archive type `Accept` names; else zip. Adapter names are safe in a filename (ADAPTER_NAME). */
export function archiveFormat(query: string | undefined, accept: string | undefined): AdapterArchiveFormat {
  if (query !== undefined) {
    if ((ADAPTER_ARCHIVE_FORMATS as readonly string[]).includes(query)) return query as AdapterArchiveFormat;
    throw badRequest(`Invalid value for 'format': expected one of ${ADAPTER_ARCHIVE_FORMATS.join(", ")}; got ${JSON.stringify(query)}.`, "format", "invalid_value");
  }
  for (const type of (accept ?? "").split(",").map((t) => t.split(";")[0]!.trim().toLowerCase())) {
    if (type === "application/zip") return "zip";
    if (type === "application/gzip" || type === "application/x-gzip" || type === "application/x-tar+gzip") return "tar.gz";
  }
  return "zip";
}

interface Upload {
  name: string;
  isPublic: boolean;
  /** Reads the body's files lazily, so the cheap checks on the fields answer first. */
  source: () => Promise<AdapterSource>;
}

const ARCHIVE_TYPES = /^application\/(zip|gzip|x-gzip|x-tar|octet-stream)\b/i;
const truthy = (v: unknown) => v === "true" || v === "1";

async function readUpload(c: Context<AppEnv>, maxBytes: number): Promise<Upload> {
  const type = c.req.header("content-type") ?? "";
  if (ARCHIVE_TYPES.test(type)) {
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (body.byteLength > maxBytes) throw payloadTooLarge(`The archive is larger than the upload limit of ${maxBytes} bytes.`);
    return { name: (c.req.query("name") ?? "").trim(), isPublic: truthy(c.req.query("public")), source: async () => ({ archive: body }) };
  }
  if (!/^multipart\/form-data/i.test(type)) {
    throw unsupportedMediaType(`Expected multipart/form-data or an archive (application/zip, application/gzip, application/x-tar), got ${type ? JSON.stringify(type) : "none"}.`);
  }
  const form = await readMultipart(c);
  const name = typeof form.name === "string" ? form.name.trim() : "";
  return { name, isPublic: truthy(form.public), source: () => uploadedSource(form, maxBytes) };
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

/** The form as an upload source; the catalog refuses a pickle `.bin` model by its name, before a missing config. */
async function uploadedSource(form: Form, maxBytes: number): Promise<AdapterSource> {
  const archive = fileField(form, "file");
  if (archive) return { archive: await bytesOf(archive, maxBytes) };
  const config = fileField(form, "adapter_config");
  const model = fileField(form, "adapter_model");
  const pickle = model?.name.endsWith(".bin") ?? false;
  if (!model || (!config && !pickle)) {
    throw badRequest("Upload either 'file' (a .zip or .tar.gz adapter folder) or both 'adapter_config' and 'adapter_model'.", "file", "missing_file");
  }
  // A pickle is refused by its name alone: nothing of it is read.
  if (pickle) return { config: new Uint8Array(0), model: new Uint8Array(0), modelFileName: model.name };
  return { config: await bytesOf(config!, maxBytes), model: await bytesOf(model, maxBytes), modelFileName: model.name };
}
