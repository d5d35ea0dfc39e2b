/**
 * `switchyard eval` against the real server in this process (stories260k, the stories test set and its
 * knowledge base): upload, run, progress lines, the report's table on stdout and the HTML written; a
 * bad file is refused with its line numbers.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evalCommand } from "../../cli/eval.ts";
import { addDocument } from "../edge/chat/fixtures.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

const FIXTURES = join(import.meta.dirname, "../fixtures/evals");
let p: TestPlatform;
let key: string;
let root: string;

beforeAll(async () => {
  p = await startTestPlatform();
  key = (await createTenantWithKey(p, "cli-eval")).key;
  for (const doc of JSON.parse(readFileSync(join(FIXTURES, "knowledge.json"), "utf8"))) await addDocument(p, key, doc.title, doc.text);
  root = mkdtempSync(join(tmpdir(), "cli-eval-"));
});
afterAll(async () => {
  await p?.stop();
  rmSync(root, { recursive: true, force: true });
});

function stream() {
  const out = Object.assign(new PassThrough(), { isTTY: false });
  let text = "";
  out.on("data", (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

async function cli(argv: string[]) {
  const [stdout, stderr] = [stream(), stream()];
  const code = await evalCommand(argv, { stdout: stdout.out, stderr: stderr.out, pollMs: 20 });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe("switchyard eval", () => {
  it("runs the arms, shows progress, prints the table and writes the HTML report", async () => {
    const html = join(root, "report.html");
    const { code, stdout, stderr } = await cli([join(FIXTURES, "stories.jsonl"), "--arms", "prompt,rag", "--html", html, "--url", p.url, "--key", key]);
    expect(code, stderr).toBe(0);
    expect(stderr).toContain("evaluating 4 items × 2 arms (prompt, rag)");
    expect(stderr).toContain("items × arms: 100% (8 of 8)");
    const [header, prompt, rag] = stdout.split("\n");
    expect(header).toMatch(/^arm\s+pass\s+fail\s+err\s+rouge1/);
    expect(prompt).toMatch(/^prompt\s+4\s+0\s+0\s+\d\.\d{3} \[/);
    expect(rag).toMatch(/^rag\s/);
    expect(header).toContain("recallAtK");
    expect(stdout).toContain("findings:");
    const page = readFileSync(html, "utf8");
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toContain('data-arm="rag"');
  });

  it("refuses a bad test set with its line numbers (exit 1) and bad arms (exit 2)", async () => {
    const bad = join(root, "bad.jsonl");
    writeFileSync(bad, '{"messages": [{"role": "user", "content": "hi"}], "reference": "x"}\n{"reference": "y"}\n');
    const refused = await cli([bad, "--url", p.url, "--key", key]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("line 2: messages");
    const usage = await cli([bad, "--arms", "prompt,magic", "--url", p.url, "--key", key]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("unknown arm 'magic'");
  });
});
