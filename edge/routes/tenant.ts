import { Hono } from "hono";
import type { Tenant, Tenants } from "../../ports/tenants.ts";
import type { AppEnv } from "../env.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { effectiveSettings, TenantSettingsSchema, type TenantSettingsPatch } from "../tenant-settings.ts";

/** A plane's say on a settings patch: returns it normalized, or throws an ApiError naming the field. */
export type SettingsCheck = (tenant: Tenant, patch: TenantSettingsPatch) => TenantSettingsPatch | Promise<TenantSettingsPatch>;

function tenantView(t: { id: string; name: string; settings: Record<string, unknown>; limits: Record<string, unknown> }) {
  return { id: t.id, object: "tenant", name: t.name, settings: effectiveSettings(t.settings), limits: t.limits };
}

/** The caller's own tenant, mounted at /v1/tenant. */
export function tenantRoutes(tenants: Tenants, check: SettingsCheck = (_t, s) => s): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["tenant"];

  app.get("/", describe({ summary: "The calling tenant and its settings.", tags }), (c) => c.json(tenantView(c.get("tenant"))));

  app.patch("/", describe({ summary: "Update the calling tenant's settings: a value sets one, null resets it to its default, a missing key leaves it.", tags }), jsonBody(TenantSettingsSchema), async (c) => {
    const tenant = c.get("tenant");
    const patch = await check(tenant, c.req.valid("json"));
    return c.json(tenantView((await tenants.patchSettings(tenant.id, patch))!));
  });

  return app;
}
