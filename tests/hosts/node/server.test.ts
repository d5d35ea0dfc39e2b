import { createHash } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform, type TestResponse } from "../../helpers/platform.ts";

let p: TestPlatform;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_MAX_JSON_BODY: "4kb" });
});
afterAll(async () => {
  await p.stop();
});

async function expectError(res: TestResponse, status: number, type: string, param: string | null = null) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  const body = await res.json();
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error.type).toBe(type);
  expect(body.error.param).toBe(param);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

describe("ops routes", () => {
  it("answers health, readiness, metrics and the OpenAPI document", async () => {
    expect(await (await p.call("GET", "/health")).json()).toEqual({ status: "ok" });
    expect(await (await p.call("GET", "/ready")).json()).toEqual({ status: "ready" });
    const metrics = await (await p.call("GET", "/metrics")).text();
    expect(metrics).toMatch(/switchyard_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
    expect(metrics).toMatch(/switchyard_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/ready",status="200"\}/);
    const doc = await (await p.call("GET", "/openapi.json")).json();
    expect(doc.openapi).toBe("3.1.0");
    const create = doc.paths["/v1/admin/tenants"].post;
    expect(create.requestBody.content["application/json"].schema.properties.name.type).toBe("string");
    expect(doc.paths["/v1/admin/tenants/{id}/keys"].post.parameters[0]).toMatchObject({ name: "id", in: "path" });
    expect(doc.paths["/v1/tenant"].patch.summary).toMatch(/settings/);
  });

  it("echoes a sane request id and makes one up otherwise", async () => {
    const given = await p.call("GET", "/health", { headers: { "x-request-id": "abc-123" } });
    expect(given.headers.get("x-request-id")).toBe("abc-123");
    const made = await p.call("GET", "/health", { headers: { "x-request-id": "bad id with spaces" } });
    expect(made.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("tenants and keys", () => {
  it("creates, lists, gets and disables tenants; a disabled tenant's key gets 401", async () => {
    const { tenantId, key } = await createTenantWithKey(p, "disable-me");
    const list = await (await p.call("GET", "/v1/admin/tenants", { key: ADMIN_KEY })).json();
    expect(list.data.map((t: { id: string }) => t.id)).toContain(tenantId);
    const got = await (await p.call("GET", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY })).json();
    expect(got).toMatchObject({ id: tenantId, name: "disable-me", disabled: false });

    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(200);
    const disabled = await (await p.call("POST", `/v1/admin/tenants/${tenantId}/disable`, { key: ADMIN_KEY })).json();
    expect(disabled.disabled).toBe(true);
    await expectError(await p.call("GET", "/v1/tenant", { key }), 401, "authentication_error");

    await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { disabled: false } });
    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(200);
  });

  it("returns a key once, stores only its hash, and revokes it", async () => {
    const { tenantId, key, keyId } = await createTenantWithKey(p, "keys");
    expect(key).toMatch(/^sy_key_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const listed = await (await p.call("GET", `/v1/admin/tenants/${tenantId}/keys`, { key: ADMIN_KEY })).json();
    expect(listed.data).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain(key.slice(20));
    expect(listed.data[0]).toMatchObject({ id: keyId, prefix: key.slice(0, 12), revoked: false });

    // What is at rest: the row holds the SHA-256 of the whole key, and the secret nowhere.
    const sqlite = new Database(join(p.dataDir, "switchyard.db"), { readonly: true });
    const row = sqlite.prepare("SELECT * FROM api_keys WHERE id = ?").get(keyId) as Record<string, unknown>;
    sqlite.close();
    expect(row.hash).toBe(createHash("sha256").update(key).digest("hex"));
    expect(Object.values(row).filter((v) => typeof v === "string" && v.includes(key.slice(20)))).toEqual([]);

    const revoked = await (await p.call("DELETE", `/v1/admin/keys/${keyId}`, { key: ADMIN_KEY })).json();
    expect(revoked.revoked).toBe(true);
    await expectError(await p.call("GET", "/v1/tenant", { key }), 401, "authentication_error");
  });

  it("rejects missing, malformed, wrong and tampered keys, and keys of the wrong role", async () => {
    const { key } = await createTenantWithKey(p, "auth");
    await expectError(await p.call("GET", "/v1/tenant"), 401, "authentication_error");
    await expectError(await p.call("GET", "/v1/tenant", { headers: { authorization: "Basic abc" } }), 401, "authentication_error");
    await expectError(await p.call("GET", "/v1/tenant", { key: "sy_nope" }), 401, "authentication_error");
    const tampered = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    await expectError(await p.call("GET", "/v1/tenant", { key: tampered }), 401, "authentication_error");
    await expectError(await p.call("GET", "/v1/admin/tenants", { key }), 403, "permission_error");
    await expectError(await p.call("GET", "/v1/tenant", { key: ADMIN_KEY }), 403, "permission_error");
    const res = await p.call("GET", "/v1/tenant");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("round-trips tenant settings and rejects bad ones naming the field", async () => {
    const { key } = await createTenantWithKey(p, "settings");
    const initial = await (await p.call("GET", "/v1/tenant", { key })).json();
    expect(initial.settings).toMatchObject({ defaultStrategy: "prompt", defaultAdapter: null, systemPrompt: null });

    const patch = { defaultStrategy: "rag+adapter", systemPrompt: "Answer briefly.", fewShot: [{ user: "Hi", assistant: "Hello!" }] };
    const updated = await (await p.call("PATCH", "/v1/tenant", { key, json: patch })).json();
    expect(updated.settings).toMatchObject(patch);
    expect((await (await p.call("GET", "/v1/tenant", { key })).json()).settings).toMatchObject(patch);

    const reset = await (await p.call("PATCH", "/v1/tenant", { key, json: { systemPrompt: null } })).json();
    expect(reset.settings).toMatchObject({ systemPrompt: null, defaultStrategy: "rag+adapter" });

    await expectError(await p.call("PATCH", "/v1/tenant", { key, json: { defaultStrategy: "magic" } }), 400, "invalid_request_error", "defaultStrategy");
    await expectError(await p.call("PATCH", "/v1/tenant", { key, json: { unknownSetting: 1 } }), 400, "invalid_request_error");
    await expectError(await p.call("PATCH", "/v1/tenant", { key, json: { defaultAdapter: "nobody-has-this" } }), 400, "invalid_request_error", "defaultAdapter");
  });
});

describe("error statuses", () => {
  it("400 for invalid JSON and for schema errors with the offending field", async () => {
    const bad = await p.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, body: "{not json", headers: { "content-type": "application/json" } });
    expect((await expectError(bad, 400, "invalid_request_error")).code).toBe("invalid_json");
    await expectError(await p.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, json: { name: 42 } }), 400, "invalid_request_error", "name");
    await expectError(await p.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, json: { name: "x", limits: { requestsPerMinute: -1 } } }), 400, "invalid_request_error", "limits.requestsPerMinute");
  });

  it("404 for unknown routes and unknown ids, 405 with Allow for a wrong method", async () => {
    await expectError(await p.call("GET", "/nowhere"), 404, "not_found_error");
    await expectError(await p.call("GET", "/v1/admin/tenants/ten_doesnotexist", { key: ADMIN_KEY }), 404, "not_found_error", "tenant_id");
    const res = await p.call("DELETE", "/health");
    await expectError(res, 405, "invalid_request_error");
    expect(res.headers.get("allow")).toBe("GET");
    const onParam = await p.call("PUT", "/v1/admin/tenants/ten_x", { key: ADMIN_KEY });
    expect(onParam.status).toBe(405);
    expect(onParam.headers.get("allow")).toBe("GET, PATCH");
  });

  it("413 for a body over the limit, 415 for a non-JSON body", async () => {
    const big = { name: "x".repeat(5000) };
    const tooLarge = await expectError(await p.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, json: big }), 413, "invalid_request_error");
    expect(tooLarge.message).toContain("4096");
    const form = await p.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, body: "name=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
    await expectError(form, 415, "invalid_request_error");
  });

  it("429 with Retry-After once a tenant passes its request rate", async () => {
    const { tenantId, key } = await createTenantWithKey(p, "limited");
    await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { limits: { requestsPerMinute: 2 } } });
    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(200);
    expect((await p.call("GET", "/v1/tenant", { key })).status).toBe(200);
    const limited = await p.call("GET", "/v1/tenant", { key });
    await expectError(limited, 429, "rate_limit_error");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("restart", () => {
  it("keeps tenants, keys and settings across a restart", async () => {
    const { tenantId, key } = await createTenantWithKey(p, "durable");
    await p.call("PATCH", "/v1/tenant", { key, json: { systemPrompt: "persist me" } });
    await p.restart();
    const me = await (await p.call("GET", "/v1/tenant", { key })).json();
    expect(me).toMatchObject({ id: tenantId, name: "durable", settings: { systemPrompt: "persist me" } });
  });
});
