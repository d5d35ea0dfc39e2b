import { Hono, type Context } from "hono";
import { z } from "zod";
import { FILE_PURPOSES, OPENAI_FILE_PURPOSES, type FileObject, type FilePurpose, type Files, type FileUpload } from "../../ports/files.ts";
import type { AppEnv } from "../env.ts";
import { badRequest, unsupportedMediaType, withParam } from "../errors.ts";
import { describe, queryParams } from "../middleware/body.ts";
import { readMultipart, type Form } from "../middleware/multipart.ts";

/** OpenAI's file object (OpenAIFile), with the training data's counts as two extra fields. */
export function fileJson(f: FileObject) {
  return {
    id: f.id,
    object: "file" as const,
    bytes: f.bytes,
    created_at: Math.floor(f.createdAt / 1000),
    filename: f.filename,
    purpose: f.purpose,
    status: "processed" as const,
    example_count: f.examples,
    token_count: f.tokens,
  };
}

const ListQuery = z.object({
  purpose: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  order: z.enum(["asc", "desc"]).default("desc"),
  after: z.string().min(1).optional(),
});

const UPLOAD_FIELDS = new Set(["file", "purpose"]);

/** OpenAI's Files API over the files port, mounted at /v1/files behind a tenant key. */
export function fileRoutes(files: Files): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["files"];

  app.post("/", describe({ summary: "Upload a file: multipart with `file` and `purpose` (only `fine-tune`: JSONL chat examples, validated line by line).", tags }), async (c) => {
    const upload = await readUpload(c);
    return c.json(fileJson(await withParam("file", () => files.upload(upload))));
  });

  app.get("/", describe({ summary: "The caller's files, newest first; `purpose` filter, cursor paging with `after` and `limit`.", tags }), queryParams(ListQuery), async (c) => {
    const { purpose, limit, order, after } = c.req.valid("query");
    // A purpose this platform does not store has no files.
    const page = purpose === undefined || isSupported(purpose) ? await files.list(c.get("tenant").id, { purpose, limit, order, after }) : { data: [], hasMore: false };
    const data = page.data.map(fileJson);
    return c.json({ object: "list", data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.hasMore });
  });

  app.get("/:id", describe({ summary: "One file.", tags }), async (c) => c.json(fileJson(await withParam("file_id", () => files.get(c.get("tenant").id, c.req.param("id"))))));

  app.get("/:id/content", describe({ summary: "The file's bytes as uploaded.", tags }), async (c) => {
    const tenantId = c.get("tenant").id;
    const id = c.req.param("id");
    const file = await withParam("file_id", () => files.get(tenantId, id));
    // A remote plane's bytes stream through, never held whole here.
    const read = (): Promise<Uint8Array | ReadableStream<Uint8Array>> => (files.contentStream ? files.contentStream(tenantId, id) : files.content(tenantId, id));
    const bytes = await withParam("file_id", read);
    return c.body(bytes as Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>, 200, {
      "content-type": "application/octet-stream",
      "content-disposition": `attachment; filename="${file.filename.replace(/["\\\r\n]/g, "_")}"`,
    });
  });

  app.delete("/:id", describe({ summary: "Delete a file and its bytes.", tags }), async (c) => {
    const deleted = await withParam("file_id", () => files.delete(c.get("tenant").id, c.req.param("id")));
    return c.json({ id: deleted.id, object: "file" as const, deleted: true });
  });

  return app;
}

const isSupported = (purpose: string | undefined): purpose is FilePurpose => (FILE_PURPOSES as readonly (string | undefined)[]).includes(purpose);

async function readUpload(c: Context<AppEnv>): Promise<FileUpload> {
  const type = c.req.header("content-type") ?? "";
  if (!/^multipart\/form-data/i.test(type)) throw unsupportedMediaType(`Upload a file as multipart/form-data with fields \`file\` and \`purpose\`, not ${JSON.stringify(type || "no content type")}.`);
  const form = await readMultipart(c);
  const unknown = Object.keys(form).find((field) => !UPLOAD_FIELDS.has(field));
  if (unknown) throw badRequest(`Unknown field '${unknown}': an upload takes only \`file\` and \`purpose\`.`, unknown, "unknown_field");
  const purpose = readPurpose(form);
  const file = form.file;
  if (!(file instanceof File)) throw badRequest("Missing field 'file': the multipart upload needs one `file` holding the data.", "file", "missing_field");
  return { tenantId: c.get("tenant").id, filename: file.name, purpose, bytes: new Uint8Array(await file.arrayBuffer()) };
}

/** `purpose`: one of OpenAI's values, and one this platform stores. */
function readPurpose(form: Form): FilePurpose {
  const purpose = form.purpose;
  if (purpose === undefined) throw badRequest("Missing field 'purpose'.", "purpose", "missing_field");
  if (typeof purpose !== "string") throw badRequest("`purpose` must be one text field.", "purpose", "invalid_value");
  if (!(OPENAI_FILE_PURPOSES as readonly string[]).includes(purpose)) {
    throw badRequest(`Invalid value for 'purpose': expected one of ${OPENAI_FILE_PURPOSES.join(", ")}; got ${JSON.stringify(purpose)}.`, "purpose", "invalid_value");
  }
  if (!isSupported(purpose)) {
    throw badRequest(`Purpose '${purpose}' is not supported here: only ${FILE_PURPOSES.map((p) => `'${p}'`).join(", ")} files can be uploaded (training data for fine-tuning).`, "purpose", "unsupported_purpose");
  }
  return purpose;
}
