import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_SOURCES } from "../../hosts/node/config.ts";

const root = join(import.meta.dirname, "../..");

function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [join(root, "bin/switchyard.mjs"), ...args], { cwd: root });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, err })));
}

describe("switchyard --help", () => {
  it("lists the subcommands", async () => {
    const { code, out } = await runCli(["--help"]);
    expect(code).toBe(0);
    expect(out).toMatch(/^usage: switchyard <command>/);
    for (const name of ["start", "serve", "generate", "ingest", "train", "jobs"]) expect(out).toMatch(new RegExp(`^  ${name} +\\S`, "m"));
    expect(out).toContain("switchyard <command> --help");
  });

  it("shows each subcommand's own options, and exits 0", async () => {
    const [generate, start, ingest, viaHelp] = await Promise.all([
      runCli(["generate", "--help"]),
      runCli(["start", "--help"]),
      runCli(["ingest", "-h"]),
      runCli(["help", "generate"]),
    ]);
    expect(generate.code).toBe(0);
    expect(generate.err).toBe("");
    expect(generate.out).toMatch(/^usage: switchyard generate --prompt TEXT/);
    for (const flag of ["--model", "--prompt", "--max-tokens", "--temperature", "--seed", "--top-p", "--top-k", "--stop", "--adapter", "--logprobs", "--data-dir"]) {
      expect(generate.out).toMatch(new RegExp(`^  ${flag} `, "m"));
    }
    expect(viaHelp.out).toBe(generate.out);

    expect(start.code).toBe(0);
    expect(start.out).toMatch(/^usage: switchyard start/);
    for (const { flag, env } of Object.values(CONFIG_SOURCES)) expect(start.out).toMatch(new RegExp(`^  ${flag} .*\\(${env}`, "m"));
    expect(start.out).toMatch(/--port N .*default 8787/);

    expect(generate.out).toMatch(/^  --data-dir DIR .*adapter catalog/m);
    expect(generate.out).not.toContain("registry");

    expect(ingest.code).toBe(0);
    expect(ingest.out).toMatch(/^usage: switchyard ingest PATH\.\.\. \(--tenant ID \| --key KEY\)/);
    for (const flag of ["--tenant", "--key", "--url", "--data-dir", "--embedding-model", "--int8"]) expect(ingest.out).toMatch(new RegExp(`^  ${flag}\\b`, "m"));
  });

  it("documents train's hyperparameters, server options and Ctrl-C, and the jobs subcommands", async () => {
    const [train, jobs] = await Promise.all([runCli(["train", "--help"]), runCli(["help", "jobs"])]);
    expect(train.code).toBe(0);
    expect(train.out).toMatch(/^usage: switchyard train DATA\.jsonl \[options\]/);
    for (const flag of ["--validation FILE", "--suffix NAME", "--epochs N", "--batch-size N", "--learning-rate X", "--rank R", "--alpha A", "--max-steps N", "--seed N", "--model M", "--url URL", "--key KEY", "--data-dir DIR", "--detach", "--cancel-on-interrupt"]) {
      expect(train.out).toMatch(new RegExp(`^  ${flag} +\\S`, "m"));
    }
    expect(train.out).toContain("Ctrl-C detaches");
    expect(train.out).toContain("switchyard jobs show ID --follow");
    expect(jobs.code).toBe(0);
    expect(jobs.out).toMatch(/^usage: switchyard jobs \[list\] \[--limit N\] \| jobs show ID \[--follow\] \| jobs cancel ID/);
    for (const flag of ["--limit N", "--follow", "--url URL", "--key KEY"]) expect(jobs.out).toMatch(new RegExp(`^  ${flag} +\\S`, "m"));
  });

  it("still refuses an unknown command or option, on stderr with exit 2", async () => {
    const unknown = await runCli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^unknown command: frobnicate\nusage: switchyard <command>/);
    const badOption = await runCli(["generate", "--prompt", "x", "--temprature", "0"]);
    expect(badOption.code).toBe(2);
    expect(badOption.err).toMatch(/Unknown option '--temprature'[\s\S]*usage: switchyard generate/);
  });
});
