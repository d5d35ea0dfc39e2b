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
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function waitFor(predicate: () => boolean, ms = 30_000) {
  const until = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("switchyard start", () => {
  it("starts, prints the admin key once, serves, and shuts down cleanly on SIGTERM", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switchyard-cli-"));
    dirs.push(dataDir);
    const run = runCli(["start", "--port", "0", "--data-dir", dataDir], {});
    await waitFor(() => run.out().includes("switchyard listening"));
    expect(run.err()).toMatch(/Generated admin key .*: sy_adm_/);
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
    await waitFor(() => again.out().includes("switchyard listening"));
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
