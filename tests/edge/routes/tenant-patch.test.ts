import { Hono } from "hono";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { AppEnv } from "../../../edge/env.ts";
import { tenantRoutes } from "../../../edge/routes/tenant.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import type { Tenant } from "../../../services/store/schema.ts";
import { TenantStore } from "../../../services/store/tenants.ts";

/**
 * PATCH /v1/tenant merges its patch into the row as stored when it writes, not into the copy that
 * authentication read: a change made in between (an adapter delete clearing `defaultAdapter`, another
 * PATCH) survives.
 */
let store: OpenDatabase;
let tenants: TenantStore;

beforeEach(() => {
  store = openDatabase(":memory:");
  tenants = new TenantStore(store.db);
});
afterEach(() => store.close());

/** The route as mounted, with the tenant the auth middleware read at the start of the request. */
function routeWith(tenantAsAuthenticated: Tenant) {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    c.set("tenant", tenantAsAuthenticated);
    await next();
  });
  app.route("/v1/tenant", tenantRoutes(tenants));
  return app;
}

it("keeps a change made after authentication read the tenant", async () => {
  const created = await tenants.create("acme", { defaultAdapter: "ad_1", chunkSize: 128 });
  const authenticated = (await tenants.get(created.id))!;
  // Meanwhile the adapter is deleted (which clears the default) and another key is written.
  await tenants.update(created.id, { settings: { chunkSize: 128, systemPrompt: "Be brief." } });

  const res = await routeWith(authenticated).request("/v1/tenant", {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ fewShot: [{ user: "Hi", assistant: "Hello" }], chunkSize: null }),
  });
  expect(res.status).toBe(200);
  expect((await tenants.get(created.id))!.settings).toEqual({ systemPrompt: "Be brief.", fewShot: [{ user: "Hi", assistant: "Hello" }] });
  expect(((await res.json()) as { settings: unknown }).settings).toMatchObject({ defaultAdapter: null, systemPrompt: "Be brief.", chunkSize: 256 });
});
