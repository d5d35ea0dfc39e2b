/**
 * A plane node as a child process (`bin/switchyard.mjs serve inference|retrieval`, or the control node
 * `serve trainer --port 0`) on a free loopback port, on stories260k, resolved once its plane is ready.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findModel, REPO_ROOT } from "./model-path.ts";

export const NODE_SECRET = "node-secret-0123456789abcdef";

export interface PlaneNodeChild {
  url: string;
  dataDir: string;
  /** fetch with the node secret (or the given Authorization header, or none with `null`). */
  call(path: string, init?: RequestInit & { authorization?: string | null }): Promise<Response>;
  /** Sends the process a signal (SIGKILL: the node dies mid-request) and resolves once it exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export async function spawnPlaneNode(plane: "inference" | "retrieval" | "trainer", env: Record<string, string> = {}, dataDir?: string): Promise<PlaneNodeChild> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), `switchyard-${plane}-node-`));
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/switchyard.mjs"), "serve", plane, ...(plane === "trainer" ? ["--port", "0"] : [])], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      SWITCHYARD_NODE_SECRET: NODE_SECRET,
      SWITCHYARD_MODEL: findModel("stories260k"),
      ...env,
      SWITCHYARD_LOG_LEVEL: "info",
      SWITCHYARD_HOST: "127.0.0.1",
      SWITCHYARD_PORT: "0",
      SWITCHYARD_DATA_DIR: dir,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const url = await new Promise<string>((resolve, reject) => {
    let listening: string | undefined;
    const timer = setTimeout(() => reject(new Error(`the ${plane} node was not ready within 120 s:\n${stderr}`)), 120_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      for (const text of stdout.split("\n").slice(0, -1)) {
        const line = JSON.parse(text) as { msg?: string; url?: string };
        if (line.msg === "switchyard node listening") listening = line.url;
        if (line.msg === "plane ready" && listening) {
          clearTimeout(timer);
          resolve(listening);
        }
      }
      stdout = stdout.slice(stdout.lastIndexOf("\n") + 1);
    });
    void exited.then(() => (clearTimeout(timer), reject(new Error(`the ${plane} node exited:\n${stderr}`))));
  }).catch((err: unknown) => {
    child.kill("SIGKILL");
    throw err;
  });
  return {
    url,
    dataDir: dir,
    call(path, init = {}) {
      const { authorization, ...rest } = init;
      const headers = new Headers(rest.headers);
      const value = authorization === undefined ? `Bearer ${NODE_SECRET}` : authorization;
      if (value !== null) headers.set("authorization", value);
      return fetch(`${url}${path}`, { ...rest, headers });
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
