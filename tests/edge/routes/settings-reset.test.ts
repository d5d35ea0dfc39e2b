import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { STORIES_SHAPE } from "../chat/fixtures.ts";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

/** `null` resets tenant settings and limits; admin PATCH edge cases. Real server, real SQLite. */
let p: TestPlatform;

beforeAll(async () => {
  p = await startTestPlatform();
});
afterAll(async () => {
  await p.stop();
});

const DEFAULTS = { defaultAdapter: null, defaultStrategy: "prompt", systemPrompt: null, fewShot: [], chunkSize: 256, chunkOverlap: 32 };
const CHANGED = {
  defaultStrategy: "rag",
  systemPrompt: "Answer briefly.",
  fewShot: [{ user: "Hi", assistant: "Hello!" }],
  chunkSize: 128,
  chunkOverlap: 8,
};

const admin = (method: string, path: string, json?: unknown) => p.call(method, `/v1/admin${path}`, { key: ADMIN_KEY, json });

async function patchSettings(key: string, json: unknown) {
  const res = await p.call("PATCH", "/v1/tenant", { key, json });
  expect(res.status).toBe(200);
  return (await res.json()).settings;
}

describe("PATCH /v1/tenant: null resets each setting", () => {
  for (const [name, value] of Object.entries(CHANGED)) {
    it(`${name}: a value sets it, null resets it to the default and leaves the others`, async () => {
      const { key, tenantId } = await createTenantWithKey(p, `reset-${name}`);
      const other = name === "systemPrompt" ? { chunkSize: 512 } : { systemPrompt: "Keep me." };
      expect(await patchSettings(key, { [name]: value, ...other })).toMatchObject({ [name]: value, ...other });

      const reset = await patchSettings(key, { [name]: null });
      expect(reset).toEqual({ ...DEFAULTS, ...other });
      expect((await (await p.call("GET", "/v1/tenant", { key })).json()).settings).toEqual(reset);
      const stored = (await (await admin("GET", `/tenants/${tenantId}`)).json()).settings;
      expect(stored).toEqual(other); // reset means gone from storage, not stored as null
    });
  }

  it("defaultAdapter: null resets it (and the strategy it implied)", async () => {
    const { key } = await createTenantWithKey(p, "reset-adapter");
    const form = adapterForm();
    const upload = await p.call("POST", "/v1/adapters", { key, body: form });
    expect(upload.status).toBe(201);
    const { id } = await upload.json();
    expect(await patchSettings(key, { defaultAdapter: "resettable" })).toMatchObject({ defaultAdapter: id, defaultStrategy: "adapter" });
    expect(await patchSettings(key, { defaultAdapter: null })).toEqual(DEFAULTS);
  });

  it("a wrong type is still a 400 naming the field", async () => {
    const { key } = await createTenantWithKey(p, "reset-bad");
    for (const [param, value] of [["fewShot", "none"], ["chunkSize", 1], ["chunkOverlap", -1], ["defaultStrategy", "magic"]] as const) {
      const res = await p.call("PATCH", "/v1/tenant", { key, json: { [param]: value } });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatchObject({ type: "invalid_request_error", param });
    }
  });
});

describe("POST /v1/admin/tenants with a defaultAdapter", () => {
  it("stores a public adapter's name as its id, and refuses one the new tenant may not use without creating it", async () => {
    const form = adapterForm("public-default");
    form.append("public", "true");
    const upload = await p.call("POST", "/v1/admin/adapters", { key: ADMIN_KEY, body: form });
    expect(upload.status, await upload.clone().text()).toBe(201);
    const { id } = await upload.json();

    const created = await admin("POST", "/tenants", { name: "born-with-default", settings: { defaultAdapter: "public-default" } });
    expect(created.status).toBe(201);
    expect((await created.json()).settings).toEqual({ defaultAdapter: id });

    const { key } = await createTenantWithKey(p, "private-owner");
    const privateUpload = await p.call("POST", "/v1/adapters", { key, body: adapterForm("someone-elses") });
    expect(privateUpload.status).toBe(201);
    const before = (await (await admin("GET", "/tenants")).json()).data.length;
    for (const ref of ["someone-elses", "no-such-adapter"]) {
      const refused = await admin("POST", "/tenants", { name: `refused-${ref}`, settings: { defaultAdapter: ref } });
      expect(refused.status).toBe(400);
      expect((await refused.json()).error).toMatchObject({ param: "defaultAdapter", code: "adapter_not_found" });
    }
    expect((await (await admin("GET", "/tenants")).json()).data.length).toBe(before);
  });
});

function adapterForm(name = "resettable"): FormData {
  const { files } = randomPeftAdapter(STORIES_SHAPE, { rank: 2, seed: 1 });
  const form = new FormData();
  form.append("name", name);
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  return form;
}

const LIMITS = { requestsPerMinute: 100, tokensPerMinute: 5000, maxDocuments: 10, maxDocumentBytes: 100_000 };

describe("PATCH /v1/admin/tenants/:id limits", () => {
  async function tenantWithLimits(name: string) {
    const t = await createTenantWithKey(p, name);
    const res = await admin("PATCH", `/tenants/${t.tenantId}`, { limits: LIMITS });
    expect(res.status).toBe(200);
    expect((await res.json()).limits).toEqual(LIMITS);
    return t;
  }

  for (const name of Object.keys(LIMITS)) {
    it(`${name}: null resets that limit only`, async () => {
      const { tenantId } = await tenantWithLimits(`limit-${name}`);
      const res = await admin("PATCH", `/tenants/${tenantId}`, { limits: { [name]: null } });
      expect(res.status).toBe(200);
      const { [name]: _gone, ...rest } = LIMITS as Record<string, number>;
      expect((await res.json()).limits).toEqual(rest);
      expect((await (await admin("GET", `/tenants/${tenantId}`)).json()).limits).toEqual(rest);
    });
  }

  for (const clear of [{}, null]) {
    it(`limits: ${JSON.stringify(clear)} clears every limit`, async () => {
      const { tenantId } = await tenantWithLimits(`clear-${JSON.stringify(clear)}`);
      const res = await admin("PATCH", `/tenants/${tenantId}`, { limits: clear });
      expect(res.status).toBe(200);
      expect((await res.json()).limits).toEqual({});
      expect((await (await admin("GET", `/tenants/${tenantId}`)).json()).limits).toEqual({});
    });
  }

  it("a reset limit stops applying: requestsPerMinute", async () => {
    const { key, tenantId } = await createTenantWithKey(p, "limit-effect-rpm");
    await admin("PATCH", `/tenants/${tenantId}`, { limits: { requestsPerMinute: 1 } });
    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(200);
    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(429);
    await admin("PATCH", `/tenants/${tenantId}`, { limits: { requestsPerMinute: null } });
    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(200);
  });

  it("a reset limit stops applying: maxDocuments", async () => {
    const { key, tenantId } = await createTenantWithKey(p, "limit-effect-docs");
    await admin("PATCH", `/tenants/${tenantId}`, { limits: { maxDocuments: 0 } });
    const doc = { title: "Note", text: "A short note about limits." };
    const refused = await p.call("POST", "/v1/knowledge/documents", { key, json: doc });
    expect(refused.status).toBe(413);
    await admin("PATCH", `/tenants/${tenantId}`, { limits: {} });
    expect((await p.call("POST", "/v1/knowledge/documents", { key, json: doc })).status).toBeLessThan(300);
  });

  it("a wrong limit value is a 400 naming it", async () => {
    const { tenantId } = await createTenantWithKey(p, "limit-bad");
    const res = await admin("PATCH", `/tenants/${tenantId}`, { limits: { maxDocuments: -1 } });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ type: "invalid_request_error", param: "limits.maxDocuments" });
  });
});

describe("PATCH /v1/admin/tenants/:id with nothing to change", () => {
  it("{} is a no-op 200 returning the tenant unchanged", async () => {
    const { tenantId } = await createTenantWithKey(p, "noop");
    await admin("PATCH", `/tenants/${tenantId}`, { limits: { maxDocuments: 3 } });
    const before = await (await admin("GET", `/tenants/${tenantId}`)).json();
    const res = await admin("PATCH", `/tenants/${tenantId}`, {});
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(before);
  });

  it("unknown fields are a 400, as on PATCH /v1/tenant, and change nothing", async () => {
    const { tenantId } = await createTenantWithKey(p, "unknown-field");
    const before = await (await admin("GET", `/tenants/${tenantId}`)).json();
    const res = await admin("PATCH", `/tenants/${tenantId}`, { nickname: "x" });
    expect(res.status).toBe(400);
    const { error } = await res.json();
    expect(error).toMatchObject({ type: "invalid_request_error", code: "invalid_value" });
    expect(error.message).toContain("nickname");
    expect(await (await admin("GET", `/tenants/${tenantId}`)).json()).toEqual(before);
  });

  it("an unknown tenant is still a 404", async () => {
    const res = await admin("PATCH", "/tenants/ten_missing", {});
    expect(res.status).toBe(404);
    expect((await res.json()).error.param).toBe("tenant_id");
  });
});
