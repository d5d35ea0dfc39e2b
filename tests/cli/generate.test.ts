import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { generateCommand } from "../../cli/generate.ts";
import { findModel } from "../helpers/model-path.ts";

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join("") };
}

describe("switchyard generate", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("streams a greedy completion of the prompt to stdout", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "sy-cli-"));
    dirs.push(dataDir);
    const [stdout, stderr] = [sink(), sink()];
    const argv = ["--model", findModel("stories260k"), "--prompt", "Once upon a time", "--max-tokens", "12", "--temperature", "0", "--data-dir", dataDir];
    const code = await generateCommand(argv, { stdout: stdout.stream, stderr: stderr.stream });
    expect(code).toBe(0);
    expect(stdout.text()).toBe("Once upon a time, there was a little girl named Lily. She\n");
    expect(stderr.text()).toMatch(/\[12 tokens, length, first token [\d.]+ ms, \d+ tokens\/s\]/);
  });

  it("exits 2 with usage on bad arguments and 1 on an unknown model", async () => {
    const [stdout, stderr] = [sink(), sink()];
    expect(await generateCommand(["--model", "x", "--max-tokens", "0", "--prompt", "hi"], { stdout: stdout.stream, stderr: stderr.stream })).toBe(2);
    expect(stderr.text()).toMatch(/invalid --max-tokens: 0\nusage: switchyard generate/);
    const err2 = sink();
    expect(await generateCommand(["--model", "/no/such/model", "--prompt", "hi"], { stdout: stdout.stream, stderr: err2.stream })).toBe(1);
    expect(err2.text()).toMatch(/unknown model "\/no\/such\/model"/);
    expect(stdout.text()).toBe("");
  });
});
