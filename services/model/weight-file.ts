/**
 * One weight file per compiled model (and weight format) not served in place from its source
 * (./compile-cache.ts), shared by every graph variant compiled from it: `<dir>/weights.bin` holds the graphs' large initializers, each variant's .onnx references them
 * there by offset (ONNX external data). onnxruntime memory-maps external data, so every session of
 * the model maps the same file pages: the weights are in memory once, however many variants run.
 *
 * Invariants:
 * - Offsets are 4096-byte aligned (a page), so a tensor's pages are its own and the mapping needs no
 *   copy to align it.
 * - `weights.json` (the manifest: each tensor's name, offset and length, and the file's size) is the
 *   truth; it is replaced atomically only after the data it lists is written and synced. Bytes past
 *   its `size` (a writer that died mid-append) are cut off by the next writer.
 * - The file is append-only: a tensor, once listed, never moves, so graphs written earlier and
 *   sessions mapping it stay valid while a new variant appends what it alone needs.
 * - A tensor is reused only if an entry of the same name holds the same bytes (compared, not
 *   assumed), so two variants can never read each other's differing constants.
 * - Writers of one directory are serialised by `weights.lock` (the holder's pid; a lock whose holder
 *   no longer runs is taken over, as services/lock-holder.ts decides).
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, writeSync, fsyncSync } from "node:fs";
import { mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { lockHolderAlive } from "../lock-holder.ts";
import { writeFileAtomically, type ExternalPlacement } from "./graph/onnx.ts";
import { readFully } from "./read-fully.ts";

export const WEIGHT_FILE = "weights.bin";
const MANIFEST = "weights.json";
const LOCK = "weights.lock";
const PAGE = 4096;
const MANIFEST_VERSION = 1;

export interface WeightEntry {
  name: string;
  offset: number;
  length: number;
}

export interface WeightManifest {
  version: number;
  /** Bytes of weights.bin that entries cover (padding included). */
  size: number;
  entries: WeightEntry[];
}

/** The manifest of the weight file in `dir`, or undefined when none was committed there. */
export async function readWeightManifest(dir: string): Promise<WeightManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const manifest = JSON.parse(text) as WeightManifest;
  if (manifest.version !== MANIFEST_VERSION) throw new Error(`${join(dir, MANIFEST)}: unknown manifest version ${manifest.version}`);
  return manifest;
}

/**
 * A writer's view of the weight file: `place` answers where a tensor lies (reusing an equal one, or
 * queueing it for append), `commit` writes the queue. Hold it only under `withWeightFileLock`.
 */
export class WeightFileWriter {
  private readonly byName = new Map<string, WeightEntry[]>();
  private readonly pending: { entry: WeightEntry; bytes: Uint8Array }[] = [];
  private size: number;
  private fd?: number;

  private constructor(
    readonly dir: string,
    private readonly committed: WeightManifest,
  ) {
    this.size = committed.size;
    for (const e of committed.entries) this.index(e);
  }

  static async open(dir: string): Promise<WeightFileWriter> {
    await mkdir(dir, { recursive: true });
    return new WeightFileWriter(dir, (await readWeightManifest(dir)) ?? { version: MANIFEST_VERSION, size: 0, entries: [] });
  }

  get path(): string {
    return join(this.dir, WEIGHT_FILE);
  }

  /** Tensors queued by `place` and not yet committed. */
  get appended(): number {
    return this.pending.length;
  }

  /** Where `bytes` (initializer `name`) lies: an entry of that name with the same bytes, else a new one at the end. */
  place(name: string, bytes: Uint8Array): ExternalPlacement {
    const same = this.byName.get(name)?.find((e) => e.length === bytes.byteLength && this.holds(e, bytes));
    if (same) return { location: WEIGHT_FILE, offset: same.offset };
    const offset = Math.ceil(this.size / PAGE) * PAGE;
    const entry = { name, offset, length: bytes.byteLength };
    this.size = offset + bytes.byteLength;
    this.pending.push({ entry, bytes });
    this.index(entry);
    return { location: WEIGHT_FILE, offset };
  }

  /** Appends the queued tensors, syncs, then replaces the manifest (nothing is listed before it is on disk). */
  async commit(): Promise<void> {
    this.closeReader();
    if (this.pending.length === 0 && existsSync(this.path)) return;
    const fd = openSync(this.path, existsSync(this.path) ? "r+" : "w");
    try {
      ftruncateSync(fd, this.committed.size); // drops a dead writer's unlisted tail
      for (const { entry, bytes } of this.pending) writeAll(fd, bytes, entry.offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const entries = [...this.committed.entries, ...this.pending.map((p) => p.entry)];
    const manifest: WeightManifest = { version: MANIFEST_VERSION, size: this.size, entries };
    await writeFileAtomically(join(this.dir, MANIFEST), [new TextEncoder().encode(JSON.stringify(manifest))]);
    this.committed.entries = entries;
    this.committed.size = this.size;
    this.pending.length = 0;
  }

  private index(entry: WeightEntry): void {
    const list = this.byName.get(entry.name) ?? [];
    list.push(entry);
    this.byName.set(entry.name, list);
  }

  /** Whether `entry` holds exactly `bytes` (a queued tensor in memory, a committed one read back). */
  private holds(entry: WeightEntry, bytes: Uint8Array): boolean {
    const queued = this.pending.find((p) => p.entry === entry);
    if (queued) return sameBytes(queued.bytes, bytes) || Buffer.compare(asBuffer(queued.bytes), asBuffer(bytes)) === 0;
    this.fd ??= openSync(this.path, "r");
    if (fstatSync(this.fd).size < entry.offset + entry.length) return false;
    const chunk = Buffer.allocUnsafe(Math.min(entry.length, 1 << 24));
    for (let done = 0; done < entry.length; ) {
      const n = Math.min(chunk.byteLength, entry.length - done);
      readFully(this.fd, chunk.subarray(0, n), entry.offset + done, this.path);
      if (Buffer.compare(chunk.subarray(0, n), asBuffer(bytes.subarray(done, done + n))) !== 0) return false;
      done += n;
    }
    return true;
  }

  /** Closes the file the comparisons read (commit does too). */
  closeReader(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Runs `work` holding the directory's writer lock (waiting for a live holder, taking over a dead one's). */
export async function withWeightFileLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const lock = join(dir, LOCK);
  for (;;) {
    try {
      const handle = await open(lock, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (await isStale(lock)) await rm(lock, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { force: true });
  }
}

/**
 * A lock whose holder no longer runs (services/lock-holder.ts; the lock file's mtime is when it was
 * written), or that names none and is older than a writer needs to write its pid.
 */
async function isStale(lock: string): Promise<boolean> {
  const [text, writtenAt] = await Promise.all([readFile(lock, "utf8").catch(() => ""), stat(lock).then((s) => s.mtimeMs, () => 0)]);
  const holder = Number(text);
  if (Number.isInteger(holder) && holder > 0) return !lockHolderAlive(holder, writtenAt);
  return Date.now() - writtenAt > 10_000;
}

/** Whether two views cover the same memory (each graph variant views a shared tensor afresh). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.byteLength === b.byteLength;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}
