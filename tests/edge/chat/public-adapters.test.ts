import { afterAll, beforeAll, expect, it } from "vitest";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { STORIES_SHAPE, uploadRandomAdapter } from "./fixtures.ts";

let p: TestPlatform;

beforeAll(async () => {
  p = await startTestPlatform();
});
afterAll(async () => {
  await p.stop();
});

function adapterForm(name: string, extra: Record<string, string> = {}) {
  const { files } = randomPeftAdapter(STORIES_SHAPE, { rank: 4, seed: 11 });
  const form = new FormData();
  form.append("name", name);
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  return form;
}

it("an admin publishes an adapter every tenant may use; private adapters stay with their tenant", async () => {
  const published = await p.call("POST", "/v1/admin/adapters", { key: ADMIN_KEY, body: adapterForm("house-style", { public: "true" }) });
  expect(published.status).toBe(201);
  expect(await published.json()).toMatchObject({ name: "house-style", public: true });

  const a = await createTenantWithKey(p, "tenant-a");
  const b = await createTenantWithKey(p, "tenant-b");
  const privateId = await uploadRandomAdapter(p, a.key, "a-secret", 5);
  const forbidden = await p.call("POST", "/v1/adapters", { key: b.key, body: adapterForm("sneaky", { public: "true" }) });
  expect(forbidden.status).toBe(403);

  const modelsOfB = (await (await p.call("GET", "/v1/models", { key: b.key })).json()).data.map((m: { id: string }) => m.id);
  expect(modelsOfB).toContain("house-style");
  expect(modelsOfB).not.toContain("a-secret");
  expect((await p.call("GET", `/v1/adapters/${privateId}`, { key: b.key })).status).toBe(404);
  const borrowed = await p.call("POST", "/v1/chat/completions", { key: b.key, json: { model: "a-secret", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 } });
  expect(borrowed.status).toBe(404);
  expect((await borrowed.json()).error.code).toBe("model_not_found");

  const usesPublic = await p.call("POST", "/v1/chat/completions", { key: b.key, json: { model: "house-style", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 } });
  expect(usesPublic.status).toBe(200);
  expect((await usesPublic.json()).switchyard).toMatchObject({ strategy: "adapter", adapter: "house-style@1" });
});
