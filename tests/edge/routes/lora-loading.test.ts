import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../hosts/node/config.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { STORIES_SHAPE } from "../chat/fixtures.ts";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { zipOf } from "../../helpers/adapters.ts";

/** vLLM's POST /v1/load_lora_adapter and /v1/unload_lora_adapter, over HTTP against the real server. */
let p: TestPlatform;
const scratch = mkdtempSync(join(tmpdir(), "switchyard-lora-dir-"));
const loraDir = join(scratch, "loras");
const outsideDir = join(scratch, "outside");
let tenantKey: string;
let otherKey: string;
let baseText: string;

const adapterFiles = (seed: number) => randomPeftAdapter(STORIES_SHAPE, { rank: 8, amplitude: 0.5, seed }).files;

function writeAdapter(dir: string, seed: number) {
  const files = adapterFiles(seed);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter_config.json"), files.config);
  writeFileSync(join(dir, "adapter_model.safetensors"), files.model);
}

beforeAll(async () => {
  writeAdapter(join(loraDir, "sql"), 21);
  writeAdapter(join(loraDir, "nested", "chat"), 22);
  writeFileSync(join(loraDir, "zipped.zip"), zipOf({ "adapter_config.json": adapterFiles(23).config, "adapter_model.safetensors": adapterFiles(23).model }));
  writeAdapter(join(outsideDir, "secret"), 24);
  symlinkSync(join(outsideDir, "secret"), join(loraDir, "escape")); // a folder link out of the LoRA dir
  mkdirSync(join(loraDir, "half-linked"));
  writeFileSync(join(loraDir, "half-linked", "adapter_config.json"), adapterFiles(24).config);
  symlinkSync(join(outsideDir, "secret", "adapter_model.safetensors"), join(loraDir, "half-linked", "adapter_model.safetensors"));
  symlinkSync(join(loraDir, "sql"), join(loraDir, "sql-link")); // a link that stays inside is fine

  p = await startTestPlatform({ SWITCHYARD_LORA_DIR: loraDir });
  tenantKey = (await createTenantWithKey(p, "lora-user")).key;
  otherKey = (await createTenantWithKey(p, "lora-other")).key;
  baseText = (await chat(tenantKey, { strategy: "prompt" })).json.choices[0].message.content;
});
afterAll(async () => {
  await p.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const load = (json: unknown, key = ADMIN_KEY) => p.call("POST", "/v1/load_lora_adapter", { key, json });
const unload = (json: unknown, key = ADMIN_KEY) => p.call("POST", "/v1/unload_lora_adapter", { key, json });

async function chat(key: string, extra: Record<string, unknown>) {
  const res = await p.call("POST", "/v1/chat/completions", { key, json: { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 16, temperature: 0, ...extra } });
  return { status: res.status, json: await res.json() };
}

async function modelIds(key: string): Promise<string[]> {
  return (await (await p.call("GET", "/v1/models", { key })).json()).data.map((m: { id: string }) => m.id);
}

async function expectError(res: Response, status: number, fields: Record<string, unknown>) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(((await res.json()) as { error: unknown }).error).toMatchObject(fields);
}

describe("loading from the LoRA directory", () => {
  it("loads a folder as a public adapter every tenant can chat through, then unloads it", async () => {
    const path = join(loraDir, "sql");
    const res = await load({ lora_name: "sql-lora", lora_path: path });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("Success: LoRA adapter 'sql-lora' added successfully.");

    const models = (await (await p.call("GET", "/v1/models", { key: otherKey })).json()).data;
    expect(models[0]).toMatchObject({ id: "stories260k", parent: null, root: expect.stringContaining("stories260k") });
    expect(models.find((m: { id: string }) => m.id === "sql-lora")).toMatchObject({ object: "model", parent: "stories260k", root: path, owned_by: "public" });
    expect(await (await p.call("GET", "/v1/models/sql-lora", { key: tenantKey })).json()).toMatchObject({ parent: "stories260k", root: path });

    // The same files uploaded privately answer the same: the loaded adapter is the one at lora_path.
    const form = new FormData();
    form.append("name", "sql-uploaded");
    form.append("adapter_config", new Blob([new Uint8Array(adapterFiles(21).config)]), "adapter_config.json");
    form.append("adapter_model", new Blob([new Uint8Array(adapterFiles(21).model)]), "adapter_model.safetensors");
    expect((await p.call("POST", "/v1/adapters", { key: tenantKey, body: form })).status).toBe(201);
    const uploaded = await chat(tenantKey, { model: "sql-uploaded" });

    for (const key of [tenantKey, otherKey]) {
      const answer = await chat(key, { model: "sql-lora" });
      expect(answer.status).toBe(200);
      expect(answer.json.switchyard).toMatchObject({ strategy: "adapter", adapter: "sql-lora@1" });
      expect(answer.json.choices[0].message.content).toBe(uploaded.json.choices[0].message.content);
      expect(answer.json.choices[0].message.content).not.toBe(baseText);
    }

    const gone = await unload({ lora_name: "sql-lora" });
    expect(gone.status).toBe(200);
    expect(gone.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await gone.text()).toBe("Success: LoRA adapter 'sql-lora' removed successfully.");
    const after = await chat(otherKey, { model: "sql-lora" });
    expect(after.status).toBe(404);
    expect(after.json.error).toMatchObject({ param: "model", code: "model_not_found" });
    expect(await modelIds(otherKey)).not.toContain("sql-lora");
    await expectError(await unload({ lora_name: "sql-lora" }), 404, { param: "lora_name", message: "The lora adapter 'sql-lora' cannot be found." });
  });

  it("reads a relative path from the LoRA directory, a link that stays inside it, and a .zip", async () => {
    for (const [name, lora_path] of [["nested-chat", "nested/chat"], ["linked", "sql-link"], ["zipped", "zipped.zip"]]) {
      const res = await load({ lora_name: name, lora_path });
      expect(res.status, `${lora_path}: ${await res.clone().text()}`).toBe(200);
      expect((await chat(tenantKey, { model: name })).json.switchyard).toMatchObject({ strategy: "adapter", adapter: `${name}@1` });
    }
  });

  it("refuses a name already loaded, as vLLM does", async () => {
    expect((await load({ lora_name: "twice", lora_path: "sql" })).status).toBe(200);
    await expectError(await load({ lora_name: "twice", lora_path: "nested/chat" }), 400, { param: "lora_name", code: "adapter_exists" });
  });

  it("unloading a tenant's default adapter clears that default", async () => {
    const { key } = await createTenantWithKey(p, "lora-default");
    expect((await load({ lora_name: "house", lora_path: "sql" })).status).toBe(200);
    expect((await p.call("PATCH", "/v1/tenant", { key, json: { defaultAdapter: "house" } })).status).toBe(200);
    expect((await chat(key, {})).json.switchyard).toMatchObject({ strategy: "adapter", adapter: "house@1" });
    expect((await unload({ lora_name: "house" })).status).toBe(200);
    expect((await (await p.call("GET", "/v1/tenant", { key })).json()).settings).toMatchObject({ defaultAdapter: null, defaultStrategy: "prompt" });
    expect((await chat(key, {})).json.switchyard).toMatchObject({ strategy: "prompt", adapter: null });
  });
});

describe("refusals", () => {
  const forbidden = { type: "permission_error", param: "lora_path", message: expect.stringContaining("outside the LoRA directory") };
  const refusedPaths: Array<[string, string, number, Record<string, unknown>]> = [
    ["an absolute path outside", join(outsideDir, "secret"), 403, forbidden],
    ["a system path", "/etc", 403, forbidden],
    ["'..' traversal", "../outside/secret", 403, forbidden],
    ["'..' inside the path", "sql/../../outside/secret", 403, forbidden],
    ["a folder link leading out", "escape", 403, forbidden],
    ["a file link leading out", "half-linked", 403, forbidden],
    ["a path that does not exist", "nope", 404, { param: "lora_path" }],
    ["a folder without adapter files", "nested", 400, { param: "lora_path", code: "missing_file" }],
  ];
  for (const [what, lora_path, status, fields] of refusedPaths) {
    it(`refuses ${what}, loading nothing`, async () => {
      await expectError(await load({ lora_name: "refused", lora_path }), status, fields);
      expect(await modelIds(tenantKey)).not.toContain("refused");
    });
  }

  it("needs an admin key; a tenant key is a 403, no key a 401", async () => {
    await expectError(await load({ lora_name: "mine", lora_path: "sql" }, tenantKey), 403, { type: "permission_error", code: "wrong_key_role" });
    await expectError(await unload({ lora_name: "anything" }, tenantKey), 403, { type: "permission_error", code: "wrong_key_role" });
    expect((await p.call("POST", "/v1/load_lora_adapter", { json: { lora_name: "mine", lora_path: "sql" } })).status).toBe(401);
    expect(await modelIds(tenantKey)).not.toContain("mine");
  });

  it("names a missing or bad field", async () => {
    await expectError(await load({ lora_name: "x" }), 400, { type: "invalid_request_error", param: "lora_path" });
    await expectError(await load({ lora_path: "sql" }), 400, { type: "invalid_request_error", param: "lora_name" });
    await expectError(await load({ lora_name: "bad/name", lora_path: "sql" }), 400, { type: "invalid_request_error", param: "lora_name" });
    await expectError(await unload({}), 400, { type: "invalid_request_error", param: "lora_name" });
  });
});

it("documents both endpoints in the OpenAPI description", async () => {
  const { paths } = await (await p.call("GET", "/openapi.json")).json();
  for (const path of ["/v1/load_lora_adapter", "/v1/unload_lora_adapter"]) {
    expect(paths[path].post.summary).toMatch(/vLLM-compatible \(admin key\)/);
    expect(paths[path].post.requestBody.content["application/json"].schema.required).toContain("lora_name");
  }
  expect(paths["/v1/load_lora_adapter"].post.summary).toContain("SWITCHYARD_LORA_DIR");
});

describe("without SWITCHYARD_LORA_DIR", () => {
  it("the load endpoint refuses with a clear error", async () => {
    const bare = await startTestPlatform();
    try {
      const res = await bare.call("POST", "/v1/load_lora_adapter", { key: ADMIN_KEY, json: { lora_name: "sql", lora_path: join(loraDir, "sql") } });
      expect(res.status).toBe(403);
      const { error } = await res.json();
      expect(error).toMatchObject({ type: "permission_error", code: "lora_dir_not_configured", param: "lora_path" });
      expect(error.message).toContain("SWITCHYARD_LORA_DIR");
    } finally {
      await bare.stop();
    }
  });

  it("a LoRA directory that does not exist stops the start with one line naming it", () => {
    expect(() => loadConfig({ SWITCHYARD_LORA_DIR: join(scratch, "missing") })).toThrow(ConfigError);
    expect(() => loadConfig({}, ["--lora-dir", join(scratch, "missing")])).toThrow(/--lora-dir=.*no such directory/);
    expect(loadConfig({ SWITCHYARD_LORA_DIR: loraDir }).loraDir).toBe(loraDir);
  });
});
