/**
 * The files port over the store (better-sqlite3 or D1: every query awaited, no transactions) and a
 * blob store for the bytes.
 *
 * An upload is validated whole before anything is written; its bytes are put before its row is
 * inserted and removed again when the insert fails, so a refused or failed upload leaves neither. A
 * delete removes the row, then the bytes; a crash between leaves bytes without a row, which `recover`
 * removes at the next start. Another tenant's file is not_found.
 */
import { createHash } from "node:crypto";
import { and, asc, desc, eq, gt, lt, or, type SQL } from "drizzle-orm";
import { PlaneError } from "../../ports/errors.ts";
import { FILE_PURPOSES, type FileListQuery, type FileObject, type FilePage, type Files, type FileUpload } from "../../ports/files.ts";
import { newId } from "../store/ids.ts";
import { files, type FileRow } from "../store/schema.ts";
import type { StoreDb } from "../store/store-db.ts";
import type { FileBlobs } from "./blob-store.ts";
import { validateTrainingFile, type Tokenizer, type TrainingFileLimits } from "./validate.ts";

export interface FileStoreOptions {
  db: StoreDb;
  blobs: FileBlobs;
  /** The serving model's tokenizer and context, through the inference port. */
  tokenizer: Tokenizer;
  limits: TrainingFileLimits;
  /** Unix ms of a new file (default Date.now). */
  now?: () => number;
}

/** A list without `limit` returns at most this many (OpenAI's maximum page). */
export const MAX_PAGE = 10_000;
const MAX_FILENAME = 255;

const notFound = (id: string) => new PlaneError("not_found", `No such file: '${id}'.`, { code: "file_not_found" });

export class StoreFiles implements Files {
  private readonly db: StoreDb;

  constructor(private readonly options: FileStoreOptions) {
    this.db = options.db;
  }

  /** Removes stored bytes that belong to no row (a crash between put and insert, or during a delete). Call once at start. */
  async recover(): Promise<void> {
    const known = new Set((await this.db.select({ id: files.id }).from(files)).map((r) => r.id));
    for (const id of await this.options.blobs.list()) if (!known.has(id)) await this.options.blobs.remove(id);
  }

  async upload(upload: FileUpload): Promise<FileObject> {
    checkPurpose(upload.purpose);
    const filename = checkFilename(upload.filename);
    const summary = await validateTrainingFile(upload.bytes, this.options.tokenizer, this.options.limits);
    const id = newId("file", 24);
    await this.options.blobs.put(id, upload.bytes);
    try {
      const [row] = await this.db
        .insert(files)
        .values({
          id,
          tenantId: upload.tenantId,
          filename,
          purpose: upload.purpose,
          bytes: upload.bytes.byteLength,
          sha256: createHash("sha256").update(upload.bytes).digest("hex"),
          examples: summary.examples,
          tokens: summary.tokens,
          createdAt: (this.options.now ?? Date.now)(),
        })
        .returning();
      return toObject(row!);
    } catch (e) {
      await this.options.blobs.remove(id);
      throw e;
    }
  }

  async list(tenantId: string, query: FileListQuery = {}): Promise<FilePage> {
    const order = query.order ?? "desc";
    const limit = Math.min(query.limit ?? MAX_PAGE, MAX_PAGE);
    const cursor = query.after === undefined ? undefined : await this.cursor(tenantId, query.after);
    const by = order === "desc" ? desc : asc;
    const rows = await this.db
      .select()
      .from(files)
      .where(and(eq(files.tenantId, tenantId), query.purpose && eq(files.purpose, query.purpose), cursor && pastCursor(cursor, order)))
      .orderBy(by(files.createdAt), by(files.id))
      .limit(limit + 1);
    return { data: rows.slice(0, limit).map(toObject), hasMore: rows.length > limit };
  }

  async get(tenantId: string, id: string): Promise<FileObject> {
    return toObject(await this.row(tenantId, id));
  }

  async content(tenantId: string, id: string): Promise<Uint8Array> {
    await this.row(tenantId, id);
    return this.options.blobs.read(id);
  }

  async delete(tenantId: string, id: string): Promise<FileObject> {
    const row = await this.row(tenantId, id);
    await this.db.delete(files).where(and(eq(files.id, id), eq(files.tenantId, tenantId)));
    await this.options.blobs.remove(id);
    return toObject(row);
  }

  private async row(tenantId: string, id: string): Promise<FileRow> {
    const [row] = await this.db.select().from(files).where(and(eq(files.id, id), eq(files.tenantId, tenantId))).limit(1);
    if (!row) throw notFound(id);
    return row;
  }

  private async cursor(tenantId: string, after: string): Promise<FileRow> {
    try {
      return await this.row(tenantId, after);
    } catch {
      throw new PlaneError("invalid_request", `No file '${after}' to list after.`, { code: "invalid_cursor", param: "after" });
    }
  }
}

/** Rows that come after `cursor` in the list's order (created_at, then id, as a tie-break). */
function pastCursor(cursor: FileRow, order: "asc" | "desc"): SQL | undefined {
  const beyond = order === "desc" ? lt : gt;
  return or(beyond(files.createdAt, cursor.createdAt), and(eq(files.createdAt, cursor.createdAt), beyond(files.id, cursor.id)));
}

function checkPurpose(purpose: string): void {
  if (!(FILE_PURPOSES as readonly string[]).includes(purpose)) {
    throw new PlaneError("invalid_request", `Files with purpose '${purpose}' are not supported here; only ${FILE_PURPOSES.map((p) => `'${p}'`).join(", ")}.`, {
      code: "unsupported_purpose",
      param: "purpose",
    });
  }
}

function checkFilename(filename: string): string {
  const name = filename.trim();
  if (name === "") throw new PlaneError("invalid_request", "The file needs a name.", { code: "invalid_filename", param: "file" });
  if (name.length > MAX_FILENAME) throw new PlaneError("invalid_request", `The file name is longer than ${MAX_FILENAME} characters.`, { code: "invalid_filename", param: "file" });
  return name;
}

function toObject(row: FileRow): FileObject {
  return {
    id: row.id,
    tenantId: row.tenantId,
    filename: row.filename,
    purpose: row.purpose,
    bytes: row.bytes,
    sha256: row.sha256,
    examples: row.examples,
    tokens: row.tokens,
    createdAt: row.createdAt,
  };
}
