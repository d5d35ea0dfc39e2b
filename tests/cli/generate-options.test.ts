import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { STORIES_SHAPE } from "../edge/chat/fixtures.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";
import { REPO_ROOT } from "../helpers/model-path.ts";

/** `switchyard generate --adapter` and `--logprobs`, run as a user runs them, checked against the server's answers. */
let p: TestPlatform;
let client: OpenAI;
let adapterDir: string;
const STORY = "Once upon a time";
const GREEDY = ["--model", "stories260k", "--prompt", STORY, "--temperature", "0", "--max-tokens", "12"];

beforeAll(async () => {
  p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "cli");
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0 });
  const { files } = randomPeftAdapter(STORIES_SHAPE, { rank: 8, amplitude: 0.5, seed: 11 });
  adapterDir = mkdtempSync(join(tmpdir(), "sy-cli-adapter-"));
  writeFileSync(join(adapterDir, "adapter_config.json"), files.config);
  writeFileSync(join(adapterDir, "adapter_model.safetensors"), files.model);
  const form = new FormData();
  form.append("name", "teller");
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  const res = await p.call("POST", "/v1/adapters", { key, body: form });
  expect(res.status).toBe(201);
});
afterAll(async () => {
  await p.stop();
  rmSync(adapterDir, { recursive: true, force: true });
});

function generate(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/switchyard.mjs"), "generate", ...args], { cwd: REPO_ROOT });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, err })));
}

const serverText = async (model: string) =>
  (await client.completions.create({ model, prompt: STORY, temperature: 0, max_tokens: 12, echo: true })).choices[0].text;

describe("switchyard generate --adapter", () => {
  it("applies a PEFT folder, or an adapter stored in the data dir by name, as the server does", async () => {
    const [base, byPath, byName, byVersion] = await Promise.all([
      generate([...GREEDY, "--data-dir", p.dataDir]),
      generate([...GREEDY, "--adapter", adapterDir, "--data-dir", p.dataDir]),
      generate([...GREEDY, "--adapter", "teller", "--data-dir", p.dataDir]),
      generate([...GREEDY, "--adapter", "teller@1", "--data-dir", p.dataDir]),
    ]);
    for (const run of [base, byPath, byName, byVersion]) expect(run.code, run.err).toBe(0);
    expect(base.out).toBe(`${await serverText("stories260k")}\n`);
    const tuned = await serverText("teller");
    expect(tuned).not.toBe(await serverText("stories260k"));
    expect(byPath.out).toBe(`${tuned}\n`);
    expect(byName.out).toBe(`${tuned}\n`);
    expect(byVersion.out).toBe(`${tuned}\n`);
  });

  it("says what is wrong with an adapter it cannot find or read, exit 1", async () => {
    const missing = await generate([...GREEDY, "--adapter", "nobody", "--data-dir", p.dataDir]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no adapter folder and no stored adapter "nobody"/);
    const notPeft = await generate([...GREEDY, "--adapter", REPO_ROOT, "--data-dir", p.dataDir]);
    expect(notPeft.code).toBe(1);
    expect(notPeft.err).toMatch(/is not a PEFT adapter folder/);
    expect(notPeft.out).toBe("");
  });
});

describe("switchyard generate --logprobs", () => {
  it("prints each token's logprob and its N most likely alternatives, the server's numbers", async () => {
    const run = await generate([...GREEDY, "--logprobs", "3", "--data-dir", p.dataDir]);
    expect(run.code, run.err).toBe(0);
    const [text, table] = run.out.split("\nlogprobs (token, logprob | top alternatives):\n");
    expect(text).toBe(`${await serverText("stories260k")}\n`);
    const rows = table.trimEnd().split("\n");
    expect(rows).toHaveLength(12);
    const server = (await client.completions.create({ model: "stories260k", prompt: STORY, temperature: 0, max_tokens: 12, logprobs: 3 })).choices[0].logprobs!;
    rows.forEach((row, i) => {
      const [chosen, alternatives] = row.split("  | ");
      expect(chosen).toMatch(new RegExp(`^${escape(JSON.stringify(server.tokens![i]))} +${escape(server.token_logprobs![i]!.toFixed(4))}$`));
      const top = [...alternatives.matchAll(/("(?:[^"\\]|\\.)*") (-?\d+\.\d{4})/g)].map((m) => [JSON.parse(m[1]!), Number(m[2])]);
      expect(top).toHaveLength(3);
      for (const [token, logprob] of top) expect(server.top_logprobs![i][token as string]).toBeCloseTo(logprob as number, 4);
    });

    const bad = await generate([...GREEDY, "--logprobs", "21"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/invalid --logprobs: 21/);
  });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
