import { describe, expect, it } from "vitest";
import { ADMIN, call } from "./helpers.ts";

describe("edge on workerd with D1", () => {
  it("is live and ready against D1", async () => {
    expect((await call("GET", "/health")).json).toEqual({ status: "ok" });
    expect((await call("GET", "/ready")).json).toEqual({ status: "ready" });
  });

  it("creates a tenant, issues a key, and serves the tenant's settings over D1", async () => {
    const tenant = await call("POST", "/v1/admin/tenants", ADMIN, { name: "edge-co" });
    expect(tenant.status).toBe(201);
    const issued = await call("POST", `/v1/admin/tenants/${tenant.json.id}/keys`, ADMIN, { name: "k" });
    const auth = { authorization: `Bearer ${issued.json.key}`, "content-type": "application/json" };
    const patched = await call("PATCH", "/v1/tenant", auth, { systemPrompt: "From the edge." });
    expect(patched.json.settings.systemPrompt).toBe("From the edge.");
    expect((await call("GET", "/v1/tenant", auth)).json.id).toBe(tenant.json.id);

    await call("DELETE", `/v1/admin/keys/${issued.json.id}`, ADMIN);
    const revoked = await call("GET", "/v1/tenant", auth);
    expect(revoked.status).toBe(401);
    expect(revoked.json.error.type).toBe("authentication_error");
  });

  it("answers errors in the OpenAI shape", async () => {
    const bad = await call("POST", "/v1/admin/tenants", ADMIN, { name: 7 });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ type: "invalid_request_error", param: "name" });
    expect((await call("GET", "/v1/admin/tenants")).status).toBe(401);
  });
});
