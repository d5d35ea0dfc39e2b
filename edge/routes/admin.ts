import { Hono } from "hono";
import { z } from "zod";
import type { ApiKey, ApiKeys, Tenant, Tenants } from "../../ports/tenants.ts";
import type { AppEnv } from "../env.ts";
import { notFound } from "../errors.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { applyPatch, TenantLimitsSchema, TenantSettingsSchema, type TenantLimitsPatch } from "../tenant-settings.ts";
import type { SettingsCheck } from "./tenant.ts";

const CreateTenant = z.object({
  name: z.string().trim().min(1).max(200),
  settings: TenantSettingsSchema.optional(),
  limits: TenantLimitsSchema.optional(),
});
/** Like PATCH /v1/tenant: unknown fields are a 400, an empty body changes nothing. */
const UpdateTenant = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    disabled: z.boolean().optional(),
    /** `null` or `{}` clears every limit; `null` for one limit resets it. */
    limits: TenantLimitsSchema.nullable().optional(),
  })
  .strict();
const CreateKey = z.object({ name: z.string().max(200).default("") });

export function tenantJson(t: Tenant) {
  return { id: t.id, object: "tenant", name: t.name, disabled: t.disabled, settings: t.settings, limits: t.limits, created_at: t.createdAt };
}

export function keyJson(k: ApiKey) {
  return { id: k.id, object: "api_key", name: k.name, prefix: k.prefix, tenant_id: k.tenantId, revoked: k.revokedAt !== null, created_at: k.createdAt };
}

/** New limits: `{}` and `null` clear every limit; otherwise the given ones are set or (null) reset. */
function nextLimits(stored: Record<string, unknown>, patch: TenantLimitsPatch | null | undefined): Record<string, unknown> | undefined {
  if (patch === undefined) return undefined;
  return patch === null || Object.keys(patch).length === 0 ? {} : applyPatch(stored, patch);
}

/**
 * A tenant before it is stored: settings of a new tenant are checked as that tenant's, which owns
 * nothing yet (so a defaultAdapter can only name a public adapter), before anything is written.
 */
function unborn(name: string): Tenant {
  return { id: "", name, disabled: false, settings: {}, limits: {}, createdAt: 0 };
}

/** Admin routes, mounted at /v1/admin behind an admin key. */
export function adminRoutes(tenants: Tenants, keys: ApiKeys, check: SettingsCheck = (_t, s) => s): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["admin"];

  const tenantOr404 = async (id: string) => {
    const tenant = await tenants.get(id);
    if (!tenant) throw notFound(`No tenant with id '${id}'.`, "tenant_id");
    return tenant;
  };

  app.post("/tenants", describe({ summary: "Create a tenant.", tags }), jsonBody(CreateTenant), async (c) => {
    const body = c.req.valid("json");
    const settings = body.settings ? await check(unborn(body.name), body.settings) : {};
    return c.json(tenantJson(await tenants.create(body.name, applyPatch({}, settings), applyPatch({}, body.limits ?? {}))), 201);
  });

  app.get("/tenants", describe({ summary: "List tenants.", tags }), async (c) =>
    c.json({ object: "list", data: (await tenants.list()).map(tenantJson) }),
  );

  app.get("/tenants/:id", describe({ summary: "Get a tenant.", tags }), async (c) => c.json(tenantJson(await tenantOr404(c.req.param("id")))));

  const patchSummary = "Rename, disable/enable a tenant or set its limits (null resets one limit; `limits: {}` or `limits: null` clears them all; `{}` changes nothing).";
  app.patch("/tenants/:id", describe({ summary: patchSummary, tags }), jsonBody(UpdateTenant), async (c) => {
    const tenant = await tenantOr404(c.req.param("id"));
    const body = c.req.valid("json");
    const limits = nextLimits(tenant.limits, body.limits);
    return c.json(tenantJson((await tenants.update(tenant.id, { name: body.name, disabled: body.disabled, limits }))!));
  });

  app.post("/tenants/:id/disable", describe({ summary: "Disable a tenant: its keys stop working.", tags }), async (c) => {
    const tenant = await tenantOr404(c.req.param("id"));
    return c.json(tenantJson((await tenants.update(tenant.id, { disabled: true }))!));
  });

  app.post("/tenants/:id/keys", describe({ summary: "Issue an API key for a tenant (shown once).", tags }), jsonBody(CreateKey), async (c) => {
    const tenant = await tenantOr404(c.req.param("id"));
    const { key, row } = await keys.issue("tenant", tenant.id, c.req.valid("json").name);
    return c.json({ ...keyJson(row), key }, 201);
  });

  app.get("/tenants/:id/keys", describe({ summary: "List a tenant's API keys (without secrets).", tags }), async (c) => {
    const tenant = await tenantOr404(c.req.param("id"));
    return c.json({ object: "list", data: (await keys.listForTenant(tenant.id)).map(keyJson) });
  });

  app.delete("/keys/:keyId", describe({ summary: "Revoke an API key.", tags }), async (c) => {
    const keyId = c.req.param("keyId");
    const key = await keys.get(keyId);
    if (!key || key.role !== "tenant") throw notFound(`No API key with id '${keyId}'.`, "key_id");
    return c.json(keyJson((await keys.revoke(keyId))!));
  });

  return app;
}
