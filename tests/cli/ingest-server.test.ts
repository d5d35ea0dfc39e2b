import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ingestCommand } from "../../cli/ingest.ts";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

let p: TestPlatform;
let tenantId: string;
let key: string;
let root: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ tenantId, key } = await createTenantWithKey(p, "ingest-live"));
  root = mkdtempSync(join(tmpdir(), "ingest-server-"));
});
afterAll(async () => {
  await p.stop();
  rmSync(root, { recursive: true, force: true });
});

function docs(name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

/** Runs the command with output on a stream that claims to be a terminal, so it draws the bar. */
async function run(argv: string[]): Promise<{ code: number; output: string }> {
  const out = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
  let output = "";
  out.on("data", (d: Buffer) => (output += d.toString()));
  const code = await ingestCommand(argv, out);
  return { code, output };
}

async function topTitles(query: string): Promise<Record<string, string | undefined>> {
  const titles: Record<string, string | undefined> = {};
  for (const mode of ["dense", "bm25", "hybrid"]) {
    const res = await p.call("POST", "/v1/knowledge/search", { key, json: { query, k: 1, mode } });
    expect(res.status).toBe(200);
    titles[mode] = (await res.json()).data[0]?.title;
  }
  return titles;
}

it("sends the files to the server running on the data dir: dense, bm25 and hybrid find them at once", async () => {
  await p.call("POST", "/v1/knowledge/documents", { key, json: { title: "seed", text: "Gardening notes about tomatoes and basil." } });
  const dir = docs("live", {
    "volcano.md": "# Volcanoes\n\nBasalt lava flows cool into columns near the caldera.",
    "bridges.txt": "Suspension bridges hang their deck from steel cables between towers.",
  });
  const { code, output } = await run([dir, "--tenant", tenantId, "--data-dir", p.dataDir]);
  expect(output).toContain(`sending to the switchyard server at ${p.url}`);
  expect(output).toMatch(/ingest \[[█░]+\] 100% \| 2\/2 files/);
  expect(output).toContain(`ingested 2 of 2 files into tenant ${tenantId} (2 chunks)`);
  expect(code).toBe(0);

  expect(await topTitles("basalt lava caldera")).toEqual({ dense: "volcano.md", bm25: "volcano.md", hybrid: "volcano.md" });
  expect(await topTitles("steel cables suspension deck")).toEqual({ dense: "bridges.txt", bm25: "bridges.txt", hybrid: "bridges.txt" });

  // The key the command issued itself was revoked when it finished.
  const keys = (await (await p.call("GET", `/v1/admin/tenants/${tenantId}/keys`, { key: ADMIN_KEY })).json()).data;
  expect(keys.filter((k: { name: string }) => k.name === "switchyard ingest (temporary)")).toEqual([expect.objectContaining({ revoked: true })]);
});

it("takes a tenant key for --url, and refuses a bad key, --url without one, or a server that is not there", async () => {
  const dir = docs("keyed", { "lighthouse.txt": "The lighthouse keeper trims the lamp wick every dusk." });
  const ok = await run([dir, "--url", p.url, "--key", key]);
  expect(ok.output).toContain(`ingested 1 of 1 files into tenant ${tenantId} (1 chunks)`);
  expect(ok.code).toBe(0);
  expect(await topTitles("lighthouse keeper lamp wick")).toEqual({ dense: "lighthouse.txt", bm25: "lighthouse.txt", hybrid: "lighthouse.txt" });

  const badKey = await run([dir, "--url", p.url, "--key", "sy_key_nope"]);
  expect(badKey.code).toBe(2);
  expect(badKey.output).toContain(`the server at ${p.url} refused the key`);
  const noKey = await run([dir, "--url", p.url, "--tenant", tenantId]);
  expect(noKey.code).toBe(2);
  expect(noKey.output).toContain("--url needs --key");
  const gone = await run([dir, "--url", "http://127.0.0.1:1", "--key", key]);
  expect(gone.code).toBe(2);
  expect(gone.output).toContain("cannot reach the switchyard server at http://127.0.0.1:1");
});

it("ingests directly while the server is stopped; the restarted server finds the documents", async () => {
  await p.platform.close();
  const dir = docs("offline", { "glacier.md": "# Glaciers\n\nMoraines of crushed granite mark where the ice sheet stopped." });
  const { code, output } = await run([dir, "--tenant", tenantId, "--data-dir", p.dataDir]);
  expect(output).not.toContain("sending to");
  expect(output).toContain(`ingested 1 of 1 files into tenant ${tenantId} (1 chunks)`);
  expect(code).toBe(0);
  await p.restart();
  expect(await topTitles("moraines crushed granite ice sheet")).toEqual({ dense: "glacier.md", bm25: "glacier.md", hybrid: "glacier.md" });
});
