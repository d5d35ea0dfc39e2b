/**
 * Archive uploads in a batch: a .zip, .tar or .tar.gz upload stands for the files it holds, each one
 * a document titled with its path in the archive.
 *
 * Policy:
 * - Archives are read in memory and nothing is ever extracted to disk, so no entry can land outside a
 *   folder; names are still checked, and an absolute name, a `..` step or a NUL byte refuses that
 *   entry alone (as do tar links, devices and other non-file entries).
 * - Decompressed bytes are counted as they are produced against `maxBytes` (the batch's byte budget,
 *   shared by all its archives and plain files), and files against `maxEntries`: a zip bomb stops at
 *   the budget instead of filling memory. Passing either limit refuses the whole batch (too_large)
 *   before any document of it is stored.
 * - A corrupt archive is refused as one item; the batch's other uploads go on.
 * - Directories and macOS resource forks (`__MACOSX/`) are skipped silently.
 */
import { promisify } from "node:util";
import zlib from "node:zlib";
import { Readable } from "node:stream";
import { Unzip, UnzipInflate, type UnzipFile } from "fflate";
import tar from "tar-stream";
import type { DocumentUpload } from "../../ports/knowledge.ts";
import { KnowledgeError } from "./errors.ts";

/** One upload of a batch once its archives are expanded: a document to accept, or an entry refused on its own. */
export type ExpandedUpload = Expanded & { source: number };
type Expanded = { upload: DocumentUpload; entry?: string } | { refused: KnowledgeError; entry?: string };

export interface ExpansionLimits {
  /** Bytes of all plain uploads and decompressed archive entries together. */
  maxBytes: number;
  /** Documents the batch may hold after expansion. */
  maxEntries: number;
}

type ArchiveKind = "zip" | "tar" | "tar.gz";

/** Input fed to the zip decoder per step: bounds what one step can inflate to (deflate expands at most ~1032x). */
const ZIP_STEP = 16 * 1024;
const gunzip = promisify(zlib.gunzip);

/** Which archive an upload is, by its magic bytes (an explicit format means a document, never an archive). */
export function archiveKind(upload: DocumentUpload): ArchiveKind | undefined {
  if (upload.format) return undefined;
  const b = upload.bytes;
  if (b[0] === 0x50 && b[1] === 0x4b && (b[2] === 0x03 || b[2] === 0x05)) return "zip";
  if (b[0] === 0x1f && b[1] === 0x8b) return "tar.gz";
  return isTar(b) ? "tar" : undefined;
}

const isTar = (b: Uint8Array) => b.byteLength >= 512 && Buffer.from(b.subarray(257, 262)).toString("latin1") === "ustar";

/** The batch's uploads with every archive replaced by its entries, in order; throws too_large past a limit. */
export async function expandArchives(uploads: DocumentUpload[], limits: ExpansionLimits): Promise<ExpandedUpload[]> {
  const budget = new Budget(limits);
  const out: ExpandedUpload[] = [];
  for (const [source, upload] of uploads.entries()) {
    const kind = archiveKind(upload);
    if (!kind) {
      budget.take(upload.bytes.byteLength);
      budget.count();
      out.push({ upload, source });
      continue;
    }
    let entries: RawEntry[];
    try {
      entries = await readArchive(kind, upload.bytes, budget);
    } catch (err) {
      if (err instanceof BudgetExceeded) throw new KnowledgeError("too_large", err.message, "file");
      if (!(err instanceof KnowledgeError)) throw err;
      out.push({ refused: err, source });
      continue;
    }
    for (const entry of entries) out.push({ ...entryUpload(entry, upload, budget), source });
  }
  return out;
}

interface RawEntry {
  name: string;
  /** Why the entry is refused, or its bytes. */
  refused?: string;
  bytes?: Uint8Array;
}

function entryUpload(entry: RawEntry, archive: DocumentUpload, budget: Budget): Expanded {
  let path: string;
  try {
    path = checkEntryName(entry.name);
  } catch (err) {
    return { refused: err as KnowledgeError, entry: entry.name };
  }
  if (entry.refused) return { refused: new KnowledgeError("unsupported_media_type", `archive entry "${entry.name}" is refused: ${entry.refused}`, "file"), entry: path };
  budget.count();
  return { upload: { bytes: entry.bytes!, fileName: path, title: path, metadata: archive.metadata }, entry: path };
}

/** The entry's path with `.` steps and repeated separators removed; refuses names that could escape a folder. */
export function checkEntryName(name: string): string {
  const unsafe = (reason: string) => new KnowledgeError("invalid_request", `archive entry "${name}" is refused: ${reason}`, "file");
  if (name.includes("\0")) throw unsafe("its name contains a NUL byte");
  if (/^([/\\]|[A-Za-z]:)/.test(name)) throw unsafe("absolute paths are not allowed");
  const parts = name.split(/[/\\]/).filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw unsafe("path traversal (`..`) is not allowed");
  if (parts.length === 0) throw unsafe("it has no name");
  return parts.join("/");
}

const skipped = (name: string) => name.endsWith("/") || name.startsWith("__MACOSX/");

async function readArchive(kind: ArchiveKind, bytes: Uint8Array, budget: Budget): Promise<RawEntry[]> {
  if (kind === "zip") return readZip(bytes, budget);
  if (kind === "tar") return readTar(bytes, budget);
  let inflated: Buffer;
  try {
    inflated = await gunzip(bytes, { maxOutputLength: Math.max(1, budget.left) });
  } catch (e) {
    if (e instanceof RangeError || (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw budget.exceeded();
    throw corrupt("gzip", e);
  }
  if (!isTar(inflated)) throw new KnowledgeError("unsupported_media_type", "a gzip upload must hold a tar archive (.tar.gz)", "file");
  // The tar's file bytes are counted as its entries are read; the gzip output itself is not counted twice.
  return readTar(new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength), budget);
}

function readZip(bytes: Uint8Array, budget: Budget): RawEntry[] {
  const entries: RawEntry[] = [];
  let failure: unknown;
  const unzip = new Unzip((file: UnzipFile) => {
    if (skipped(file.name)) return;
    if (file.compression !== 0 && file.compression !== 8) {
      entries.push({ name: file.name, refused: `it uses compression method ${file.compression} (only stored and deflate are read)` });
      return;
    }
    const parts: Uint8Array[] = [];
    const entry: RawEntry = { name: file.name };
    entries.push(entry);
    file.ondata = (err, chunk, final) => {
      if (failure) return;
      if (err) failure = err;
      else if (!budget.tryTake(chunk.byteLength)) failure = budget.exceeded();
      else {
        parts.push(chunk);
        if (final) entry.bytes = concat(parts);
      }
    };
    file.start();
  });
  unzip.register(UnzipInflate);
  try {
    for (let at = 0; at < bytes.byteLength && !failure; at += ZIP_STEP) unzip.push(bytes.subarray(at, at + ZIP_STEP), at + ZIP_STEP >= bytes.byteLength);
  } catch (e) {
    failure ??= e;
  }
  if (failure instanceof BudgetExceeded) throw failure;
  if (failure) throw corrupt("zip", failure);
  const unfinished = entries.find((e) => !e.refused && !e.bytes);
  if (unfinished) throw corrupt("zip", new Error(`"${unfinished.name}" is truncated`));
  return entries;
}

async function readTar(bytes: Uint8Array, budget: Budget): Promise<RawEntry[]> {
  const entries: RawEntry[] = [];
  const extract = tar.extract();
  const done = (async () => {
    for await (const item of extract) {
      const { name, type } = item.header;
      const file = type === "file" || type === "contiguous-file";
      const parts: Buffer[] = [];
      for await (const chunk of item as AsyncIterable<Buffer>) {
        if (!budget.tryTake(chunk.byteLength)) throw budget.exceeded();
        if (file) parts.push(chunk);
      }
      if (type === "directory" || skipped(name)) continue;
      if (!file) entries.push({ name, refused: `${type} entries are not documents (links, devices and the like are not followed)` });
      else entries.push({ name, bytes: concat(parts) });
    }
  })();
  Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]).pipe(extract);
  try {
    await done;
  } catch (e) {
    extract.destroy();
    if (e instanceof BudgetExceeded) throw e;
    throw corrupt("tar", e);
  }
  return entries;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function corrupt(kind: string, cause: unknown): KnowledgeError {
  return new KnowledgeError("invalid_request", `the ${kind} archive is corrupt: ${cause instanceof Error ? cause.message : String(cause)}`, "file");
}

class BudgetExceeded extends Error {}

/** What the batch may still hold after expansion. */
class Budget {
  private bytes = 0;
  private entries = 0;

  constructor(private readonly limits: ExpansionLimits) {}

  get left(): number {
    return this.limits.maxBytes - this.bytes;
  }

  tryTake(n: number): boolean {
    this.bytes += n;
    return this.bytes <= this.limits.maxBytes;
  }

  take(n: number): void {
    if (!this.tryTake(n)) throw new KnowledgeError("too_large", this.exceeded().message, "file");
  }

  count(): void {
    if (++this.entries > this.limits.maxEntries) {
      throw new KnowledgeError("too_large", `the batch holds more than ${this.limits.maxEntries} documents (archive entries included); the limit is ${this.limits.maxEntries}`, "documents");
    }
  }

  exceeded(): BudgetExceeded {
    return new BudgetExceeded(`the batch decompresses to more than ${this.limits.maxBytes} bytes (the batch byte limit); nothing was stored`);
  }
}
