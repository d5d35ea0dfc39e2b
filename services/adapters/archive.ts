import { promisify } from "node:util";
import zlib from "node:zlib";
import { Readable } from "node:stream";
import tar from "tar-stream";
import { AdapterError } from "./errors.ts";

/** The two files of a PEFT adapter folder, as uploaded. */
export interface AdapterFiles {
  config: Uint8Array;
  model: Uint8Array;
}

const CONFIG_FILE = "adapter_config.json";
const MODEL_FILE = "adapter_model.safetensors";
const PICKLE_FILE = "adapter_model.bin";

const gunzip = promisify(zlib.gunzip);
const inflateRaw = promisify(zlib.inflateRaw);

/**
 * Pulls adapter_config.json and adapter_model.safetensors out of a .zip, .tar.gz or .tar upload.
 * Every entry name is checked (no absolute paths, no `..`, no links); decompressed bytes are
 * counted against `maxBytes` as they are produced, so a zip bomb stops at the limit.
 */
export async function extractAdapterArchive(bytes: Uint8Array, maxBytes: number): Promise<AdapterFiles> {
  if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes);
  const entries = await readEntries(bytes, maxBytes);
  return pickAdapterFiles(entries);
}

/** Checks the two files of a multipart upload the same way an archive's are checked. */
export function checkAdapterFiles(files: AdapterFiles, maxBytes: number): AdapterFiles {
  if (files.config.byteLength + files.model.byteLength > maxBytes) throw tooLarge(maxBytes);
  return files;
}

export function rejectPickle(): never {
  throw new AdapterError(
    "unsafe_format",
    `${PICKLE_FILE} is a pickle file, which can run arbitrary code when loaded, so it is refused; ` +
      `convert it to ${MODEL_FILE} (for example with safetensors.torch.save_file) and upload that`,
  );
}

type Entries = Map<string, Uint8Array>;

async function readEntries(bytes: Uint8Array, maxBytes: number): Promise<Entries> {
  if (isZip(bytes)) return readZip(bytes, maxBytes);
  if (isGzip(bytes)) return readTar(await decompress(() => gunzip(bytes, { maxOutputLength: maxBytes }), maxBytes), maxBytes);
  if (isTar(bytes)) return readTar(bytes, maxBytes);
  throw new AdapterError("invalid_archive", "the upload is not a .zip, .tar.gz or .tar archive");
}

const isZip = (b: Uint8Array) => b[0] === 0x50 && b[1] === 0x4b && (b[2] === 0x03 || b[2] === 0x05);
const isGzip = (b: Uint8Array) => b[0] === 0x1f && b[1] === 0x8b;
const isTar = (b: Uint8Array) => b.byteLength >= 512 && Buffer.from(b.subarray(257, 262)).toString("latin1") === "ustar";

const view = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

async function decompress(run: () => Promise<Buffer>, maxBytes: number): Promise<Uint8Array> {
  try {
    return view(await run());
  } catch (e) {
    if (e instanceof RangeError || (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge(maxBytes);
    throw new AdapterError("invalid_archive", `the archive is corrupt: ${(e as Error).message}`);
  }
}

function tooLarge(maxBytes: number): AdapterError {
  return new AdapterError("too_large", `the adapter is larger than this node's limit of ${maxBytes} bytes (decompressed)`);
}

/** Rejects names that could escape the extraction folder, so no caller ever has to trust one. */
export function checkEntryName(name: string): string {
  const unsafe = (reason: string) => new AdapterError("unsafe_archive_entry", `archive entry "${name}" is refused: ${reason}`);
  if (name.includes("\0")) throw unsafe("its name contains a NUL byte");
  if (/^([/\\]|[A-Za-z]:)/.test(name)) throw unsafe("absolute paths are not allowed");
  const parts = name.split(/[/\\]/).filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw unsafe("path traversal (`..`) is not allowed");
  return parts.join("/");
}

// --- zip: central directory read by hand, so links and sizes are visible before any inflate ---

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  localOffset: number;
  isLink: boolean;
}

async function readZip(bytes: Uint8Array, maxBytes: number): Promise<Entries> {
  const entries = new Map<string, Uint8Array>();
  let total = 0;
  for (const entry of zipDirectory(bytes)) {
    const name = checkEntryName(entry.name);
    if (entry.isLink) throw new AdapterError("unsafe_archive_entry", `archive entry "${entry.name}" is refused: symbolic links are not allowed`);
    if (name === "" || entry.name.endsWith("/")) continue;
    if (!isWanted(name)) continue;
    const data = await inflateZipEntry(bytes, entry, maxBytes - total, maxBytes);
    total += data.byteLength;
    addOnce(entries, name, data);
  }
  return entries;
}

function zipDirectory(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = findEndOfDirectory(view);
  const count = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  if (count === 0xffff || at === 0xffffffff) throw new AdapterError("invalid_archive", "zip64 archives are not supported");
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.byteLength || view.getUint32(at, true) !== 0x02014b50) throw corruptZip("bad central directory");
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const hostOs = view.getUint16(at + 4, true) >> 8;
    const unixMode = view.getUint32(at + 38, true) >>> 16;
    entries.push({
      name: Buffer.from(bytes.subarray(at + 46, at + 46 + nameLength)).toString("utf8"),
      flags: view.getUint16(at + 8, true),
      method: view.getUint16(at + 10, true),
      crc: view.getUint32(at + 16, true),
      compressedSize: view.getUint32(at + 20, true),
      localOffset: view.getUint32(at + 42, true),
      isLink: hostOs === 3 && (unixMode & 0o170000) === 0o120000,
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function findEndOfDirectory(view: DataView): number {
  const lowest = Math.max(0, view.byteLength - 22 - 0xffff);
  for (let at = view.byteLength - 22; at >= lowest; at--) {
    if (view.getUint32(at, true) === 0x06054b50) return at;
  }
  throw corruptZip("no end of central directory");
}

async function inflateZipEntry(bytes: Uint8Array, entry: ZipEntry, budget: number, maxBytes: number): Promise<Uint8Array> {
  if (entry.flags & 1) throw new AdapterError("invalid_archive", `archive entry "${entry.name}" is encrypted`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localOffset;
  if (at + 30 > bytes.byteLength || view.getUint32(at, true) !== 0x04034b50) throw corruptZip(`bad local header for "${entry.name}"`);
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  const raw = bytes.subarray(start, start + entry.compressedSize);
  if (raw.byteLength !== entry.compressedSize) throw corruptZip(`"${entry.name}" is truncated`);
  let data: Uint8Array;
  if (entry.method === 0) {
    if (raw.byteLength > budget) throw tooLarge(maxBytes);
    data = raw;
  } else if (entry.method === 8) {
    data = await decompress(() => inflateRaw(raw, { maxOutputLength: Math.max(1, budget) }), maxBytes);
  } else {
    throw new AdapterError("invalid_archive", `archive entry "${entry.name}" uses unsupported compression method ${entry.method}`);
  }
  if (zlib.crc32(data) >>> 0 !== entry.crc) throw corruptZip(`checksum mismatch in "${entry.name}"`);
  return data;
}

const corruptZip = (why: string) => new AdapterError("invalid_archive", `the zip archive is corrupt: ${why}`);

// --- tar ---

async function readTar(bytes: Uint8Array, maxBytes: number): Promise<Entries> {
  const entries = new Map<string, Uint8Array>();
  const extract = tar.extract();
  let total = 0;
  const done = (async () => {
    for await (const entry of extract) {
      const { header } = entry;
      const name = checkEntryName(header.name);
      if (header.type === "symlink" || header.type === "link") {
        throw new AdapterError("unsafe_archive_entry", `archive entry "${header.name}" is refused: links are not allowed`);
      }
      if (header.type !== "file" && header.type !== "contiguous-file" && header.type !== "directory") {
        throw new AdapterError("unsafe_archive_entry", `archive entry "${header.name}" is refused: ${header.type} entries are not allowed`);
      }
      const chunks: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        total += chunk.byteLength;
        if (total > maxBytes) throw tooLarge(maxBytes);
        if (isWanted(name)) chunks.push(chunk);
      }
      if (header.type !== "directory" && isWanted(name)) addOnce(entries, name, view(Buffer.concat(chunks)));
    }
  })();
  Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]).pipe(extract);
  try {
    await done;
  } catch (e) {
    extract.destroy();
    if (e instanceof AdapterError) throw e;
    throw new AdapterError("invalid_archive", `the tar archive is corrupt: ${(e as Error).message}`);
  }
  return entries;
}

// --- picking the adapter's files ---

/** A second entry of the same name would let an archive show one file to a checker and another to a loader. */
function addOnce(entries: Entries, name: string, data: Uint8Array): void {
  if (entries.has(name)) throw new AdapterError("invalid_archive", `the archive holds "${name}" more than once`);
  entries.set(name, data);
}

const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1);
const dirName = (path: string) => path.slice(0, Math.max(0, path.lastIndexOf("/")));
const isWanted = (path: string) => [CONFIG_FILE, MODEL_FILE, PICKLE_FILE].includes(baseName(path));

function pickAdapterFiles(entries: Entries): AdapterFiles {
  const configs = [...entries.keys()].filter((p) => baseName(p) === CONFIG_FILE);
  if (configs.length === 0) throw new AdapterError("missing_file", `the archive holds no ${CONFIG_FILE}`);
  if (configs.length > 1) throw new AdapterError("invalid_archive", `the archive holds more than one ${CONFIG_FILE}: ${configs.join(", ")}`);
  const dir = dirName(configs[0]!);
  const inDir = (file: string) => (dir === "" ? file : `${dir}/${file}`);
  const model = entries.get(inDir(MODEL_FILE));
  if (!model) {
    if (entries.has(inDir(PICKLE_FILE))) rejectPickle();
    throw new AdapterError("missing_file", `the archive holds no ${MODEL_FILE} next to ${CONFIG_FILE}`);
  }
  return { config: entries.get(configs[0]!)!, model };
}
