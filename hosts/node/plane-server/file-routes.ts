/**
 * The Files port served over HTTP (the other side of clients/files.ts). An upload's bytes are the
 * request body, read as a stream and refused (too_large) as soon as they pass the files plane's own
 * byte limit, with the plane's error; its name and purpose come in the upload header. Content is
 * answered as the response body.
 */
import type { Hono } from "hono";
import { z } from "zod";
import { PlaneError } from "../../../ports/errors.ts";
import type { FileListQuery, Files } from "../../../ports/files.ts";
import { readCapped } from "../../../clients/wire/body.ts";
import { decodeHeaderJson } from "../../../clients/wire/header-json.ts";
import { UPLOAD_HEADER } from "../../../clients/wire/routes.ts";
import { invalidNodeRequest, parseWire } from "./node-app.ts";

export interface FileRouteOptions {
  /** The files plane's byte limit per file (its too_large error is answered for a larger body). */
  maxBytes: number;
  ensureTenant(tenantId: string): void;
}

// The purpose is the plane's to refuse (unsupported_purpose), so any string passes here.
const Header = z.object({ filename: z.string(), purpose: z.string() });
const Query = z.object({
  purpose: z.string().optional(),
  limit: z.coerce.number().int().min(1).optional(),
  after: z.string().optional(),
  order: z.enum(["asc", "desc"]).optional(),
});

export function mountFiles(app: Hono, files: () => Files, options: FileRouteOptions): void {
  const base = "/v1/tenants/:tenant/files";
  app.post(base, async (c) => {
    const header = parseWire(Header, decodeHeaderJson(c.req.header(UPLOAD_HEADER)), `the ${UPLOAD_HEADER} header`);
    const tooLarge = () => new PlaneError("too_large", `The file is larger than the limit of ${options.maxBytes} bytes per file.`, { code: "file_too_large", param: "file" });
    const bytes = await readCapped(c.req.raw.body, options.maxBytes, tooLarge);
    const tenantId = c.req.param("tenant");
    options.ensureTenant(tenantId);
    return c.json(await files().upload({ tenantId, filename: header.filename, purpose: header.purpose as "fine-tune", bytes }), 201);
  });
  app.get(base, async (c) => {
    const parsed = Query.safeParse(c.req.query());
    if (!parsed.success) throw invalidNodeRequest("Invalid file list query.", String(parsed.error.issues[0]!.path[0] ?? ""));
    return c.json(await files().list(c.req.param("tenant"), parsed.data as FileListQuery));
  });
  app.get(`${base}/:id`, async (c) => c.json(await files().get(c.req.param("tenant"), c.req.param("id"))));
  app.get(`${base}/:id/content`, async (c) => {
    const bytes = await files().content(c.req.param("tenant"), c.req.param("id"));
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { "content-type": "application/octet-stream" });
  });
  app.delete(`${base}/:id`, async (c) => c.json(await files().delete(c.req.param("tenant"), c.req.param("id"))));
}
