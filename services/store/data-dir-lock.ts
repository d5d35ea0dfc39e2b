/**
 * One writer per data directory. The vector indexes live in memory and are written whole, so two
 * processes writing one data dir would each overwrite the other's index. The process that writes
 * (`switchyard start`, or `switchyard ingest` with no server running) holds `<data dir>/switchyard.lock`:
 * a JSON file with its pid, its role and, for a server, the URL it listens on (the discovery record
 * `switchyard ingest` uses to send documents to the running server instead). A lock whose holder no
 * longer runs (services/lock-holder.ts: a dead pid, or our own pid on a lock written before this
 * process started, as in a restarted container) is stale and taken over.
 */
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { lockHolderAlive } from "../lock-holder.ts";

export interface DataDirHolder {
  pid: number;
  role: "server" | "ingest";
  /** Where the server listens (set once it does). */
  url?: string;
  startedAt: number;
}

export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: DataDirHolder,
  ) {
    const what = holder.role === "server" ? `a switchyard server${holder.url ? ` listening on ${holder.url}` : " that is still starting"}` : "a running switchyard ingest";
    super(`data directory ${dataDir} is in use by ${what} (pid ${holder.pid}); stop it first, or use another --data-dir`);
    this.name = "DataDirInUseError";
  }
}

export interface DataDirLock {
  readonly holder: DataDirHolder;
  /** Records the server's URL in the lock, for `switchyard ingest` to find. */
  setUrl(url: string): void;
  /** Removes the lock if this process still holds it. */
  release(): void;
}

const LOCK_FILE = "switchyard.lock";

export function lockPath(dataDir: string): string {
  return join(resolve(dataDir), LOCK_FILE);
}

/** Takes the data dir's lock for this process; throws DataDirInUseError when a live process holds it. */
export function lockDataDir(dataDir: string, role: DataDirHolder["role"]): DataDirLock {
  const path = lockPath(dataDir);
  mkdirSync(resolve(dataDir), { recursive: true });
  const holder: DataDirHolder = { pid: process.pid, role, startedAt: Date.now() };
  for (;;) {
    if (createExclusively(path, holder)) break;
    const current = readHolder(path);
    if (current && holds(current)) throw new DataDirInUseError(resolve(dataDir), current);
    removeIfUnchanged(path, current);
  }
  return {
    holder,
    setUrl(url) {
      holder.url = url;
      writeAtomically(path, holder);
    },
    release() {
      if (readHolder(path)?.pid === process.pid) unlinkSync(path);
    },
  };
}

/** The live process holding the data dir, if any (a stale lock counts as none). */
export function dataDirHolder(dataDir: string): DataDirHolder | undefined {
  const current = readHolder(lockPath(dataDir));
  return current && holds(current) ? current : undefined;
}

/** Written aside and hard-linked into place: the lock appears complete or not at all. */
function createExclusively(path: string, holder: DataDirHolder): boolean {
  const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(temp, JSON.stringify(holder));
  try {
    linkSync(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    unlinkSync(temp);
  }
}

function writeAtomically(path: string, holder: DataDirHolder): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(holder));
  renameSync(temp, path);
}

function readHolder(path: string): DataDirHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<DataDirHolder>;
    return typeof parsed.pid === "number" ? (parsed as DataDirHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** Removes a stale lock, unless another process replaced it since it was read. */
function removeIfUnchanged(path: string, stale: DataDirHolder | undefined): void {
  const now = readHolder(path);
  if (now && (!stale || now.pid !== stale.pid || now.startedAt !== stale.startedAt)) return;
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Whether the lock's process still runs (services/lock-holder.ts: our own pid counts only on a lock we wrote). */
function holds(holder: DataDirHolder): boolean {
  return lockHolderAlive(holder.pid, holder.startedAt);
}
