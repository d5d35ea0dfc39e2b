import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { ingestCommand } from "../../../cli/ingest.ts";
import { loadConfig } from "../../../hosts/node/config.ts";
import { startPlatform } from "../../../hosts/node/server.ts";
import { DataDirInUseError, dataDirHolder, lockDataDir, lockPath } from "../../../services/store/data-dir-lock.ts";
import { openDatabase } from "../../../services/store/db.ts";
import { startTestPlatform } from "../../helpers/platform.ts";
import { addTenant } from "../retrieval/helpers.ts";

const root = join(import.meta.dirname, "../../..");
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function runCli(args: string[]) {
  const child = spawn(process.execPath, [join(root, "bin/switchyard.mjs"), ...args], { cwd: root, env: { ...process.env, SWITCHYARD_LOG_LEVEL: "info" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const listening = new Promise<void>((resolve) => child.stdout.on("data", () => stdout.includes("switchyard listening") && resolve()));
  return { child, exited, listening, out: () => stdout, err: () => stderr };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-lock-"));
  dirs.push(dir);
  return dir;
}

describe("one process writes a data directory", () => {
  it("refuses a second `switchyard start` on a data dir a server holds, naming it", async () => {
    const p = await startTestPlatform();
    try {
      expect(dataDirHolder(p.dataDir)).toEqual(expect.objectContaining({ pid: process.pid, role: "server", url: p.url }));
      const second = runCli(["start", "--port", "0", "--data-dir", p.dataDir]);
      expect(await second.exited).toBe(2);
      expect(second.err()).toContain(`switchyard: cannot start: data directory ${p.dataDir} is in use by a switchyard server listening on ${p.url} (pid ${process.pid})`);
      await expect(startPlatform(p.config, { announce: () => {} })).rejects.toBeInstanceOf(DataDirInUseError);
      expect((await p.call("GET", "/health")).status).toBe(200); // the first server is untouched
    } finally {
      await p.stop();
    }
    expect(existsSync(lockPath(p.dataDir))).toBe(false);
  });

  it("takes over the stale lock of a killed server: ingest writes directly, and a new server starts", async () => {
    const dataDir = tempDir();
    const killed = runCli(["start", "--port", "0", "--data-dir", dataDir]);
    await killed.listening;
    killed.child.kill("SIGKILL");
    await killed.exited;
    expect(existsSync(lockPath(dataDir))).toBe(true);
    expect(dataDirHolder(dataDir)).toBeUndefined();

    const store = openDatabase(join(dataDir, "switchyard.db"));
    addTenant(store, "acme");
    store.close();
    const docs = join(dataDir, "..", `${dataDir.split("/").pop()}-docs`);
    dirs.push(docs);
    mkdirSync(docs);
    writeFileSync(join(docs, "owls.txt"), "Barn owls hunt voles at night.");
    const out = new PassThrough();
    let output = "";
    out.on("data", (d: Buffer) => (output += d.toString()));
    expect(await ingestCommand([docs, "--tenant", "acme", "--data-dir", dataDir], out)).toBe(0);
    expect(output).not.toContain("sending to");
    expect(output).toContain("ingested 1 of 1 files into tenant acme");

    const platform = await startPlatform(loadConfig({ SWITCHYARD_LOG_LEVEL: "silent", SWITCHYARD_PORT: "0", SWITCHYARD_DATA_DIR: dataDir }), { announce: () => {} });
    expect(dataDirHolder(dataDir)).toEqual(expect.objectContaining({ pid: process.pid, role: "server", url: platform.url }));
    await platform.close();
  });

  it("takes over a lock left under its own pid by an earlier process (a restarted container's server is pid 1 again)", () => {
    const dataDir = tempDir();
    const before = Date.now() - process.uptime() * 1000 - 5_000;
    writeFileSync(lockPath(dataDir), JSON.stringify({ pid: process.pid, role: "server", startedAt: before }));
    expect(dataDirHolder(dataDir)).toBeUndefined();
    const lock = lockDataDir(dataDir, "server");
    expect(lock.holder.startedAt).toBeGreaterThan(before);
    // The lock this process now holds is live: a second taker in this process is refused.
    expect(() => lockDataDir(dataDir, "server")).toThrow(DataDirInUseError);
    lock.release();
    expect(existsSync(lockPath(dataDir))).toBe(false);
  });
});
