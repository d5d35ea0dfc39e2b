/** `switchyard serve trainer`: refuses an unknown plane, and exits on its own once the server that spawned it is gone. */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lockDataDir } from "../../services/store/data-dir-lock.ts";

const root = join(import.meta.dirname, "../..");
const dataDir = mkdtempSync(join(tmpdir(), "switchyard-serve-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [join(root, "bin/switchyard.mjs"), ...args], { cwd: root, env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })));
}

describe("switchyard serve", () => {
  it("refuses a plane it cannot serve", async () => {
    const run = await runCli(["serve", "adapters"], {});
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/expected a plane to serve \('inference', 'retrieval' or 'trainer'\), got "adapters"/);
  });

  it("inference, retrieval and the control node (trainer --port): refuse to start without the node secret", async () => {
    const planes = ["inference", "retrieval", "trainer"];
    const runs = await Promise.all(planes.map((plane) => runCli(["serve", plane, "--data-dir", dataDir, "--port", "0"], { SWITCHYARD_NODE_SECRET: "" })));
    runs.forEach((run, i) => {
      expect(run.code).toBe(2);
      expect(run.err).toMatch(new RegExp(`cannot serve ${planes[i]}: a plane node needs SWITCHYARD_NODE_SECRET`));
    });
  });

  it("trainer: starts beside the data dir's lock holder, and stops when its parent is not the server it was given", async () => {
    const lock = lockDataDir(dataDir, "server");
    const run = await runCli(["serve", "trainer", "--data-dir", dataDir], { SWITCHYARD_TRAINER_PARENT: "1", SWITCHYARD_TRAINER_FAKE_TRAIN: "1", SWITCHYARD_LOG_LEVEL: "info" });
    expect(run.code).toBe(0);
    expect(run.out).toContain('"msg":"trainer started"');
    expect(run.out).toMatch(/"reason":"parent exited".*"msg":"trainer stopping"/);
    expect(run.out).toContain('"msg":"trainer stopped"');
    lock.release();
  });
});
