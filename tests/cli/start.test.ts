import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function runCli(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [join(root, "bin/switchyard.mjs"), ...args], { cwd: root, env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  // "close", not "exit": it comes after the last output has been read.
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const output = { stdout: () => stdout, stderr: () => stderr };
  /** Resolves once the stream holds `text` (checked on every write); rejects if the process exits first. */
  const printed = (text: string, stream: "stdout" | "stderr" = "stdout") =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!output[stream]().includes(text)) return;
        child[stream].off("data", check);
        resolve();
      };
      child[stream].on("data", check);
      check();
      void exited.then((code) => reject(new Error(`exited with ${code} before printing ${JSON.stringify(text)}:\n${stdout}${stderr}`)));
    });
  return { child, exited, printed, out: () => stdout, err: () => stderr };
}

describe("switchyard start", () => {
  it("starts, prints the admin key once, serves, and shuts down cleanly on SIGTERM", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switchyard-cli-"));
    dirs.push(dataDir);
    const run = runCli(["start", "--port", "0", "--data-dir", dataDir], {});
    await run.printed("switchyard listening");
    await run.printed("Generated admin key", "stderr");
    expect(run.err()).toMatch(/Generated admin key .*: sy_adm_\S+\n/);
    const url = /"url":"([^"]+)"/.exec(run.out())![1];
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const key = /: (sy_adm_\S+)/.exec(run.err())![1];
    expect((await fetch(`${url}/v1/admin/tenants`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);

    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(run.out()).toContain("shutdown complete");
    expect(existsSync(join(dataDir, "switchyard.db"))).toBe(true);
    expect(existsSync(join(dataDir, "switchyard.db-wal"))).toBe(false); // closed cleanly: WAL checkpointed

    const again = runCli(["start", "--port", "0", "--data-dir", dataDir], {});
    await again.printed("switchyard listening");
    again.child.kill("SIGINT");
    expect(await again.exited).toBe(0);
    expect(again.err()).not.toContain("Generated admin key");
  });

  it("refuses a bad setting with one line naming it", async () => {
    const run = runCli(["start"], { SWITCHYARD_PORT: "99999" });
    expect(await run.exited).toBe(2);
    expect(run.err().trim().split("\n")).toHaveLength(1);
    expect(run.err()).toMatch(/SWITCHYARD_PORT="99999"/);
  });
});
