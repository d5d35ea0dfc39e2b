/**
 * Writes an adapter's PEFT folder as a download (.zip or .tar.gz), the inverse of archive.ts:
 * both files inside one folder (`<folder>/adapter_config.json`, `<folder>/adapter_model.safetensors`),
 * which the upload path reads back unchanged. Entries carry one fixed time (the adapter's creation),
 * so the same adapter always gives the same bytes. Compression runs through node:zlib's asynchronous
 * calls (its thread pool), never on the event loop: a large adapter must not stall the edge's streams.
 * fflate lays out the zip around the deflated data; tar-stream writes the tar.
 */
import { promisify } from "node:util";
import zlib from "node:zlib";
import { Zip, type ZipInputFile } from "fflate";
import tar from "tar-stream";
import type { AdapterArchiveFormat } from "../../ports/adapters.ts";
import type { AdapterFiles } from "./archive.ts";
import { CONFIG_FILE, MODEL_FILE } from "./blob-store.ts";

const deflateRaw = promisify(zlib.deflateRaw);
const gzip = promisify(zlib.gzip);

export interface ArchiveEntry {
  name: string;
  data: Uint8Array;
}

/** The adapter's two files under `folder`, packed as `format`; `mtime` (Unix ms) stamps every entry. */
export async function writeAdapterArchive(files: AdapterFiles, folder: string, format: AdapterArchiveFormat, mtime: number): Promise<Uint8Array> {
  const entries = [
    { name: `${folder}/${CONFIG_FILE}`, data: files.config },
    { name: `${folder}/${MODEL_FILE}`, data: files.model },
  ];
  return format === "zip" ? zipOf(entries, mtime) : tarGzOf(folder, entries, mtime);
}

async function zipOf(entries: ArchiveEntry[], mtime: number): Promise<Uint8Array> {
  const deflated = await Promise.all(entries.map((e) => deflateRaw(e.data, { level: 6 })));
  const chunks: Uint8Array[] = [];
  let failure: Error | null = null;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else chunks.push(chunk);
  });
  entries.forEach((entry, i) => {
    // A zippable file whose data is already deflated: fflate only writes the headers around it.
    const file: ZipInputFile = { filename: entry.name, size: entry.data.byteLength, crc: zlib.crc32(entry.data) >>> 0, compression: 8, mtime };
    zip.add(file);
    file.ondata!(null, new Uint8Array(deflated[i]!.buffer, deflated[i]!.byteOffset, deflated[i]!.byteLength), true);
  });
  zip.end();
  if (failure) throw failure;
  return concat(chunks);
}

async function tarGzOf(folder: string, entries: ArchiveEntry[], mtime: number): Promise<Uint8Array> {
  const pack = tar.pack();
  const date = new Date(mtime);
  pack.entry({ name: `${folder}/`, type: "directory", mode: 0o755, mtime: date });
  for (const e of entries) pack.entry({ name: e.name, size: e.data.byteLength, mode: 0o644, mtime: date }, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  const bytes = await gzip(Buffer.concat(chunks));
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
