/**
 * Safetensors reader and writer. Files on disk are never read whole: the header is parsed once and
 * each tensor's byte range is read on demand with positioned reads. Sharded models
 * (`model.safetensors.index.json`) are one store over several files.
 *
 * Identity policy (what compiled graphs are keyed by): a store's `identity` is a hash of each
 * file's name, size, modification time (ns) and header bytes, read when it opens, never of the
 * tensor bytes, so opening multi-GB weights costs one header read per file. Any rewrite of a file
 * (new data, new shapes, a copy) changes its mtime, size or header, and so the identity. What it
 * cannot see is a file rewritten in place with identical size and header and its mtime set back
 * (`touch -d`, `cp -p` of a same-shaped file): `contentHash()` is the full hash for that, computed
 * only when asked (the engine verifies it in the background after it starts, see
 * `checkSourceWeights` in services/model/compile-cache.ts).
 */
import { closeSync, createReadStream, openSync, fstatSync, existsSync, realpathSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { FileBytes } from "./graph/ir.ts";
import { readFully } from "./read-fully.ts";

export type WeightDtype = "F32" | "F16" | "BF16";

export interface TensorInfo {
  dtype: WeightDtype;
  shape: number[];
}

export interface WeightStore {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor converted to float32 (a fresh array the caller owns). */
  getF32(name: string): Float32Array<ArrayBuffer>;
  /**
   * Where tensor `name` lies as float32 bytes, to be used in place (services/model/compile-cache.ts).
   * Only on stores of files whose tensors are all F32 and whose real paths (links resolved) share one
   * folder, which onnxruntime then reads them from.
   */
  locate?(name: string): FileBytes;
  /** Names the weights' bytes cheaply: sizes, mtimes and headers of the files (see the header). */
  identity: string;
  /** sha256 (hex) over the weight files' bytes, in a fixed order: reads everything, computed once when first asked. */
  contentHash(signal?: AbortSignal): Promise<string>;
  close(): void;
}

const BYTES_PER_ELEMENT: Record<WeightDtype, number> = { F32: 4, F16: 2, BF16: 2 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bounds on an untrusted header, checked before it is decoded and while its entries are read. */
export interface HeaderLimits {
  maxHeaderBytes: number;
  maxTensors: number;
  /** Why the bounds are what they are, appended to a refusal. */
  reason?: string;
}

export class HeaderLimitError extends Error {}

/** Where a tensor's bytes come from: a file read at offsets, or memory. */
interface ByteSource {
  label: string;
  size: number;
  read(target: Uint8Array, position: number): void;
  close(): void;
}

interface TensorEntry extends TensorInfo {
  source: ByteSource;
  /** Absolute byte offset of the tensor in its source. */
  offset: number;
  byteLength: number;
}

function fileSource(path: string): ByteSource {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  let open = true;
  return {
    label: path,
    size,
    read(target, position) {
      if (!open) throw new Error(`${path}: weight store is closed`);
      readFully(fd, target, position, path);
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

function memorySource(bytes: Uint8Array, label: string): ByteSource {
  return {
    label,
    size: bytes.byteLength,
    read(target, position) {
      target.set(bytes.subarray(position, position + target.byteLength));
    },
    close() {},
  };
}

function readHeaderBytes(source: ByteSource, limits?: HeaderLimits): Uint8Array {
  if (source.size < 8) throw new Error(`${source.label}: corrupt safetensors file: ${source.size} bytes, too short for a header`);
  const lengthBytes = new Uint8Array(8);
  source.read(lengthBytes, 0);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, source.size - 8))) {
    throw new Error(`${source.label}: corrupt safetensors header: length ${headerLength} exceeds the file (${source.size} bytes)`);
  }
  if (limits && headerLength > BigInt(limits.maxHeaderBytes)) {
    throw new HeaderLimitError(`${source.label}: the header is ${headerLength} bytes, over the limit of ${limits.maxHeaderBytes}${limits.reason ? ` (${limits.reason})` : ""}`);
  }
  const header = new Uint8Array(Number(headerLength));
  source.read(header, 8);
  return header;
}

function parseHeader(source: ByteSource, limits?: HeaderLimits): Map<string, TensorEntry> {
  const headerBytes = readHeaderBytes(source, limits);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(headerBytes));
  } catch (error) {
    throw new Error(`${source.label}: corrupt safetensors header: invalid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${source.label}: corrupt safetensors header: not a JSON object`);
  }
  const dataStart = 8 + headerBytes.byteLength;
  const dataSize = source.size - dataStart;
  const entries = new Map<string, TensorEntry>();
  for (const name in json) {
    if (name === "__metadata__") continue;
    if (limits && entries.size === limits.maxTensors) {
      throw new HeaderLimitError(`${source.label}: the header lists more than ${limits.maxTensors} tensors${limits.reason ? ` (${limits.reason})` : ""}`);
    }
    entries.set(name, parseEntry(source, name, (json as Record<string, unknown>)[name], dataStart, dataSize));
  }
  return entries;
}

function parseEntry(source: ByteSource, name: string, raw: unknown, dataStart: number, dataSize: number): TensorEntry {
  const fail = (problem: string) => new Error(`${source.label}: corrupt safetensors header: tensor "${name}" ${problem}`);
  const { dtype, shape, data_offsets: offsets } = (raw ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
    throw fail(`has unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16)`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail("has an invalid shape");
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
    throw fail("has invalid data_offsets");
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataSize) throw fail(`has data_offsets [${begin}, ${end}] outside the data (${dataSize} bytes)`);
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[dtype];
  if (end - begin !== expected) throw fail(`spans ${end - begin} bytes but shape ${JSON.stringify(shape)} ${dtype} needs ${expected}`);
  return { dtype, shape: shape as number[], source, offset: dataStart + begin, byteLength: expected };
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function toFloat32(entry: TensorEntry): Float32Array<ArrayBuffer> {
  const count = entry.byteLength / BYTES_PER_ELEMENT[entry.dtype];
  if (entry.dtype === "F32") {
    const out = new Float32Array(count);
    entry.source.read(new Uint8Array(out.buffer), entry.offset);
    return out;
  }
  const halves = new Uint16Array(count);
  entry.source.read(new Uint8Array(halves.buffer), entry.offset);
  if (entry.dtype === "BF16") {
    const bits = new Uint32Array(count);
    for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
    return new Float32Array(bits.buffer);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = halfToFloat(halves[i]);
  return out;
}

function createStore(
  entries: Map<string, TensorEntry>,
  sources: ByteSource[],
  identity: string,
  hashContent: (signal?: AbortSignal) => Promise<string>,
  where: string,
  realPaths?: Map<ByteSource, string>,
): WeightStore {
  const entry = (name: string): TensorEntry => {
    const found = entries.get(name);
    if (!found) throw new Error(`tensor "${name}" not found in ${where}`);
    return found;
  };
  const inPlace = realPaths && new Set([...realPaths.values()].map(dirname)).size === 1 && [...entries.values()].every((e) => e.dtype === "F32");
  const locate = (name: string): FileBytes => {
    const { source, offset, byteLength } = entry(name);
    return { path: realPaths!.get(source)!, offset, byteLength };
  };
  let content: Promise<string> | undefined;
  return {
    ...(inPlace ? { locate } : {}),
    identity,
    // A hash that may be cancelled is not kept for the next caller.
    contentHash: (signal) => (signal ? hashContent(signal) : (content ??= hashContent())),
    names: () => [...entries.keys()],
    has: (name) => entries.has(name),
    info: (name) => {
      const { dtype, shape } = entry(name);
      return { dtype, shape: [...shape] };
    },
    getF32: (name) => toFloat32(entry(name)),
    close: () => sources.forEach((s) => s.close()),
  };
}

async function hashFiles(paths: string[], signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  for (const path of paths) {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, signal })) hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

async function shardFiles(dir: string): Promise<{ files: string[]; weightMap?: Record<string, string> }> {
  const single = join(dir, "model.safetensors");
  if (existsSync(single)) return { files: [single] };
  const indexPath = join(dir, "model.safetensors.index.json");
  if (!existsSync(indexPath)) throw new Error(`no model.safetensors or model.safetensors.index.json in ${dir}`);
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (error) {
    throw new Error(`${indexPath}: invalid JSON (${(error as Error).message})`);
  }
  const weightMap = index.weight_map;
  if (typeof weightMap !== "object" || weightMap === null) throw new Error(`${indexPath}: missing weight_map`);
  const shards = [...new Set(Object.values(weightMap))].sort();
  return { files: shards.map((s) => join(dir, s)), weightMap };
}

/** Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`, in `dir`. */
export async function openWeights(dir: string): Promise<WeightStore> {
  const { files, weightMap } = await shardFiles(dir);
  const sources: ByteSource[] = [];
  const identity = createHash("sha256").update("safetensors-identity-1");
  try {
    const entries = new Map<string, TensorEntry>();
    const realPaths = new Map<ByteSource, string>();
    for (const file of files) {
      const source = fileSource(file);
      sources.push(source);
      realPaths.set(source, realpathSync(file));
      for (const [name, entry] of parseHeader(source)) entries.set(name, entry);
      identity.update(JSON.stringify([basename(file), source.size, statSync(file, { bigint: true }).mtimeNs.toString()]));
      identity.update(readHeaderBytes(source));
    }
    for (const [name, shard] of Object.entries(weightMap ?? {})) {
      if (entries.get(name)?.source.label !== join(dir, shard)) {
        throw new Error(`tensor "${name}" listed in model.safetensors.index.json is missing from ${shard}`);
      }
    }
    return createStore(entries, sources, identity.digest("hex"), (signal) => hashFiles(files, signal), dir, realPaths);
  } catch (error) {
    sources.forEach((s) => s.close());
    throw error;
  }
}

/** A weight store over an in-memory safetensors file (adapters, tests); `limits` bound an untrusted one. */
export function parseSafetensorsBytes(bytes: Uint8Array, label = "<in-memory safetensors>", limits?: HeaderLimits): WeightStore {
  const source = memorySource(bytes, label);
  const entries = parseHeader(source, limits);
  const contentHash = createHash("sha256").update(bytes).digest("hex");
  return createStore(entries, [source], contentHash, async () => contentHash, label);
}

export interface TensorToWrite {
  dtype: WeightDtype;
  shape: number[];
  /** float values (converted to the dtype), or the raw 16-bit patterns for F16/BF16. */
  data: Float32Array | Uint16Array;
}

export function floatToBf16(value: number): number {
  const bits = new Uint32Array(new Float32Array([value]).buffer)[0];
  if (Number.isNaN(value)) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >> 16) & 1)) >>> 16) & 0xffff; // round to nearest even
}

export function floatToHalf(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const abs = Math.abs(value);
  if (abs >= 65520) return sign | 0x7c00;
  if (abs < 2 ** -14) return sign | Math.round(abs / 2 ** -24); // subnormal
  const exponent = Math.floor(Math.log2(abs));
  const mantissa = Math.round((abs / 2 ** exponent - 1) * 1024);
  // A mantissa that rounds up to 1024 carries into the exponent, which the addition does for us.
  return sign | (((exponent + 15) << 10) + mantissa);
}

function encodeTensor(name: string, t: TensorToWrite): Uint8Array {
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) throw new Error(`tensor "${name}": ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
  if (t.dtype === "F32") {
    if (!(t.data instanceof Float32Array)) throw new Error(`tensor "${name}": F32 needs a Float32Array`);
    return new Uint8Array(t.data.slice().buffer);
  }
  if (t.data instanceof Uint16Array) return new Uint8Array(t.data.slice().buffer);
  const convert = t.dtype === "BF16" ? floatToBf16 : floatToHalf;
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = convert(t.data[i]);
  return new Uint8Array(out.buffer);
}

/** Serialises tensors into the safetensors format (header padded to 8 bytes, as the spec advises). */
export function writeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const payloads: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    const bytes = encodeTensor(name, tensor);
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.byteLength] };
    payloads.push(bytes);
    offset += bytes.byteLength;
  }
  let headerText = JSON.stringify(header);
  headerText += " ".repeat((8 - (new TextEncoder().encode(headerText).byteLength % 8)) % 8);
  const headerBytes = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.byteLength;
  for (const payload of payloads) {
    out.set(payload, position);
    position += payload.byteLength;
  }
  return out;
}
