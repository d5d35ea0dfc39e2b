/**
 * The real server as a child process (`bin/switchyard.mjs start`), for tests that crash it (kill -9)
 * or must survive its crash: JSON log lines are parsed as they arrive and can be waited for.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ADMIN_KEY, type TestResponse } from "./platform.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface CallOptions {
  key?: string;
  json?: unknown;
  body?: string | Uint8Array | FormData;
  headers?: Record<string, string>;
  /** Per-request bound; the request is aborted (and the promise rejects) past it. */
  timeoutMs?: number;
}

export interface ServerChild {
  url: string;
  dataDir: string;
  pid: number;
  /** Every log line so far (JSON lines of stdout). */
  logs: LogLine[];
  stderr(): string;
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (line: LogLine) => boolean): Promise<LogLine>;
  call(method: string, path: string, options?: CallOptions): Promise<TestResponse>;
  /** Whether the process is still running. */
  alive(): boolean;
  /** SIGKILL, resolved once the process has exited. */
  kill9(): Promise<void>;
  /** SIGTERM (graceful shutdown), resolved once the process has exited. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Reuse a data dir (a restart); a fresh temp dir by default. */
  dataDir?: string;
  env?: Record<string, string>;
}

export function freshDataDir(): string {
  return mkdtempSync(join(tmpdir(), "switchyard-child-"));
}

export async function spawnServer(options: SpawnOptions = {}): Promise<ServerChild> {
  const dataDir = options.dataDir ?? freshDataDir();
  const child = spawn(process.execPath, [join(repoRoot, "bin/switchyard.mjs"), "start"], {
    cwd: repoRoot,
    env: {
      ...process.env,
      // No trainer child unless a test asks for one.
      SWITCHYARD_TRAINER: "off",
      // One embedding thread unless a test asks (a spare loads a second model).
      SWITCHYARD_EMBED_THREADS: "1",
      ...options.env,
      // The "listening" line (info) tells us the URL.
      SWITCHYARD_LOG_LEVEL: "info",
      SWITCHYARD_PORT: "0",
      SWITCHYARD_HOST: "127.0.0.1",
      SWITCHYARD_DATA_DIR: dataDir,
      SWITCHYARD_ADMIN_KEY: ADMIN_KEY,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs = collectLogs(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const listening = await Promise.race([
    logs.waitFor((l) => l.msg === "switchyard listening"),
    exited.then(() => {
      throw new Error(`the server exited before listening:\n${stderr}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the server did not listen within 60 s:\n${stderr}`)), 60_000).unref()),
  ]).catch(async (e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
  const url = String(listening.url);
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return {
    url,
    dataDir,
    pid: child.pid!,
    logs: logs.lines,
    stderr: () => stderr,
    waitForLog: logs.waitFor,
    call: (method, path, o = {}) => callServer(url, method, path, o),
    alive: () => child.exitCode === null && child.signalCode === null,
    kill9: () => signal("SIGKILL"),
    stop: () => signal("SIGTERM"),
  };
}

/** The process's peak resident memory so far (VmHWM, Linux), in bytes. */
export function peakRssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmHWM:"));
  return Number(/(\d+)/.exec(line ?? "")?.[1] ?? NaN) * 1024;
}

export function removeDataDir(dataDir: string): void {
  rmSync(dataDir, { recursive: true, force: true });
}

function collectLogs(child: ChildProcess) {
  const lines: LogLine[] = [];
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let buffer = "";
  child.stdout!.on("data", (data: Buffer) => {
    buffer += data.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    for (const text of parts) {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const waitFor = (match: (l: LogLine) => boolean) =>
    new Promise<LogLine>((resolveWait) => {
      const seen = lines.find(match);
      if (seen) resolveWait(seen);
      else waiters.push({ match, resolve: resolveWait });
    });
  return { lines, waitFor };
}

export async function callServer(url: string, method: string, path: string, o: CallOptions): Promise<TestResponse> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.key) headers.authorization = `Bearer ${o.key}`;
  let body = o.body;
  if (o.json !== undefined) {
    headers["content-type"] ??= "application/json";
    body = JSON.stringify(o.json);
  }
  return fetch(`${url}${path}`, { method, headers, body, signal: AbortSignal.timeout(o.timeoutMs ?? 30_000) });
}

/** Creates a tenant and a key for it through the admin API of a child server. */
export async function childTenant(s: ServerChild, name: string): Promise<{ tenantId: string; key: string; keyId: string }> {
  const tenant = await (await s.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, json: { name } })).json();
  const issued = await (await s.call("POST", `/v1/admin/tenants/${tenant.id}/keys`, { key: ADMIN_KEY, json: { name: "test" } })).json();
  return { tenantId: tenant.id, key: issued.key, keyId: issued.id };
}
