/**
 * The AdapterCatalog port served over HTTP (the other side of clients/adapters.ts). The viewer comes
 * in the query (clients/wire/viewer.ts); an upload's bytes are the request body, read as a stream and
 * refused past the catalog's upload limit (which also bounds the two PEFT files together), the
 * catalog then applying its own rules. Archive and content are answered as the response body.
 */
import type { Context, Hono } from "hono";
import { z } from "zod";
import { PlaneError } from "../../../ports/errors.ts";
import { ADAPTER_ARCHIVE_FORMATS, type AdapterCatalog, type AdapterSource, type Viewer } from "../../../ports/adapters.ts";
import { readCapped } from "../../../clients/wire/body.ts";
import { decodeHeaderJson, encodeHeaderJson } from "../../../clients/wire/header-json.ts";
import { ADAPTER_HEADER, ADAPTER_ROUTES, CONFIG_LENGTH_HEADER, UPLOAD_HEADER } from "../../../clients/wire/routes.ts";
import { parseViewer } from "../../../clients/wire/viewer.ts";
import { invalidNodeRequest, jsonBody, parseWire } from "./node-app.ts";

export interface AdapterRouteOptions {
  /** The catalog's upload limit (an archive, or the two PEFT files together). */
  maxUploadBytes: number;
  ensureTenant(tenantId: string): void;
}

const Owner = { tenantId: z.string().min(1).nullable(), name: z.string() };
const UploadHeader = z.discriminatedUnion("source", [
  z.object({ ...Owner, source: z.literal("archive") }),
  z.object({ ...Owner, source: z.literal("files"), configBytes: z.number().int().min(0), modelFileName: z.string().optional() }),
  z.object({ ...Owner, source: z.literal("path"), path: z.string() }),
]);
const Resolve = z.object({ model: z.string().nullable(), tenantId: z.string().min(1), defaultAdapter: z.string().nullable() });
const Format = z.enum(ADAPTER_ARCHIVE_FORMATS);

function viewerOf(c: Context): Viewer {
  const viewer = parseViewer({ tenant: c.req.query("tenant"), admin: c.req.query("admin") });
  if (!viewer) throw invalidNodeRequest("A catalog call names its viewer: ?tenant=ID or ?admin=1.", "viewer");
  return viewer;
}

export function mountAdapters(app: Hono, catalog: () => AdapterCatalog, options: AdapterRouteOptions): void {
  const one = `${ADAPTER_ROUTES.list}/:id` as const;
  app.get(ADAPTER_ROUTES.base, async (c) => c.json({ id: await catalog().baseModel() }));
  app.post(ADAPTER_ROUTES.resolve, async (c) => {
    const { model, tenantId, defaultAdapter } = parseWire(Resolve, await jsonBody(c));
    return c.json(await catalog().resolve(model ?? undefined, tenantId, defaultAdapter));
  });
  app.get(ADAPTER_ROUTES.list, async (c) => c.json({ data: await catalog().list(viewerOf(c)) }));
  app.post(ADAPTER_ROUTES.list, async (c) => {
    const header = parseWire(UploadHeader, decodeHeaderJson(c.req.header(UPLOAD_HEADER)), `the ${UPLOAD_HEADER} header`);
    const source = await uploadSource(c, header, options.maxUploadBytes);
    if (header.tenantId !== null) options.ensureTenant(header.tenantId);
    return c.json(await catalog().upload({ tenantId: header.tenantId, name: header.name, source }), 201);
  });
  app.get(one, async (c) => c.json(await catalog().get(c.req.param("id"), viewerOf(c))));
  app.delete(one, async (c) => c.json(await catalog().delete(c.req.param("id"), viewerOf(c))));
  app.get(`${one}/archive`, async (c) => {
    const format = Format.safeParse(c.req.query("format"));
    if (!format.success) throw invalidNodeRequest(`format is one of ${ADAPTER_ARCHIVE_FORMATS.join(", ")}.`, "format");
    const { adapter, bytes } = await catalog().archive(c.req.param("id"), viewerOf(c), format.data);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { "content-type": "application/octet-stream", [ADAPTER_HEADER]: encodeHeaderJson(adapter) });
  });
  app.get(`${one}/content`, async (c) => {
    const { config, model } = await catalog().content(c.req.param("id"), viewerOf(c));
    const body = new Blob([config as Uint8Array<ArrayBuffer>, model as Uint8Array<ArrayBuffer>]).stream();
    return c.body(body, 200, { "content-type": "application/octet-stream", [CONFIG_LENGTH_HEADER]: String(config.byteLength) });
  });
}

async function uploadSource(c: Context, header: z.output<typeof UploadHeader>, maxBytes: number): Promise<AdapterSource> {
  if (header.source === "path") return { path: header.path };
  const tooLarge = () => new PlaneError("too_large", `The adapter upload is larger than the limit of ${maxBytes} bytes.`, { code: "upload_too_large" });
  const bytes = await readCapped(c.req.raw.body, maxBytes, tooLarge);
  if (header.source === "archive") return { archive: bytes };
  if (header.configBytes > bytes.byteLength) throw invalidNodeRequest("configBytes is longer than the body.", "configBytes");
  return { config: bytes.subarray(0, header.configBytes), model: bytes.subarray(header.configBytes), modelFileName: header.modelFileName };
}
