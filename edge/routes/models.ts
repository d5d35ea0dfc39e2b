import type { Context } from "hono";
import { Hono } from "hono";
import type { AdapterCatalog, AdapterInfo } from "../../ports/adapters.ts";
import { modelNotFound } from "../../ports/errors.ts";
import type { ResolvedPlan } from "../chat/strategy.ts";
import type { AppEnv } from "../env.ts";
import { withParam } from "../errors.ts";
import { describe } from "../middleware/body.ts";
import { effectiveSettings } from "../tenant-settings.ts";
import { viewerOf } from "./adapters.ts";

export interface ModelRouteDeps {
  catalog: AdapterCatalog;
  /** Unix seconds shown as the base model's `created`. */
  baseCreated?: number;
  /** The base model's `root`, as vLLM shows it: the model as configured (folder, name or Hub id); default its id. */
  baseRoot?: string;
}

interface TenantLike {
  id: string;
  settings: Record<string, unknown>;
}

/**
 * Reads the OpenAI `model` field for a tenant with one catalog call (`resolve`): `BASE`,
 * `BASE:ADAPTER` or `ADAPTER`; `BASE` or no model means the tenant's default adapter when one is set.
 * The answer carries the adapter's display name (`name@version`), so nothing looks it up again.
 * An unknown model is model_not_found, with OpenAI's 404 body.
 */
export async function resolveModelField(model: string | undefined, tenant: TenantLike, catalog: AdapterCatalog): Promise<ResolvedPlan> {
  const defaultAdapter = effectiveSettings(tenant.settings).defaultAdapter;
  const resolved = await withParam("model", () => catalog.resolve(model, tenant.id, defaultAdapter));
  if (!resolved.adapter) return { base: resolved.base };
  const virtualTokens = resolved.adapter.numVirtualTokens ?? undefined;
  return { base: resolved.base, adapterId: resolved.adapter.id, adapterName: displayName(resolved.adapter), ...(virtualTokens ? { virtualTokens } : {}) };
}

/** `resolveModelField` bound to a catalog: the chat routes' `resolveModel`. */
export const modelResolver = (catalog: AdapterCatalog) => (model: string | undefined, tenant: TenantLike) => resolveModelField(model, tenant, catalog);

/** How responses and usage name an adapter. */
export const displayName = (a: Pick<AdapterInfo, "name" | "version">) => `${a.name}@${a.version}`;

function modelJson(id: string, created: number, ownedBy: string, extra: Record<string, unknown> = {}) {
  return { id, object: "model", created, owned_by: ownedBy, ...extra };
}

function adapterModelJson(a: AdapterInfo, id: string) {
  return modelJson(id, Math.floor(a.createdAt / 1000), a.tenantId ?? "public", {
    parent: a.baseModel,
    // As vLLM: an adapter's root is where it was loaded from (lora_path), else its folder in the data directory.
    root: a.root,
    adapter_id: a.id,
    version: a.version,
  });
}

function baseModelJson(baseId: string, deps: ModelRouteDeps) {
  return modelJson(baseId, deps.baseCreated ?? 0, "switchyard", { root: deps.baseRoot ?? baseId, parent: null });
}

/** The models a tenant may call: the base and, by name, the newest version of each usable adapter. */
async function listModels(c: Context<AppEnv>, deps: ModelRouteDeps) {
  const baseId = await deps.catalog.baseModel();
  const byName = new Map<string, AdapterInfo>();
  for (const a of await deps.catalog.list(viewerOf(c))) {
    if (a.baseModel !== baseId) continue;
    const seen = byName.get(a.name);
    const better = !seen || (seen.tenantId === null && a.tenantId !== null) || (seen.tenantId === a.tenantId && a.version > seen.version);
    if (better) byName.set(a.name, a);
  }
  return [baseModelJson(baseId, deps), ...[...byName.values()].map((a) => adapterModelJson(a, a.name))];
}

/** OpenAI-compatible model listing, mounted at /v1/models. */
export function modelRoutes(deps: ModelRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["models"];

  app.get("/", describe({ summary: "The base model and every adapter the caller may use, as vLLM shows them: `parent` = the base for adapters (null for the base), `root` = the base model as configured, or the adapter's path.", tags }), async (c) =>
    c.json({ object: "list", data: await listModels(c, deps) }),
  );

  app.get("/:id", describe({ summary: "One model: the base, `BASE:ADAPTER`, an adapter name, `name@version` or adapter id.", tags }), async (c) => {
    const id = c.req.param("id");
    const baseId = await deps.catalog.baseModel();
    if (id === baseId) return c.json(baseModelJson(baseId, deps));
    const { adapter } = await withParam("model", () => deps.catalog.resolve(id, c.get("tenant").id));
    if (!adapter) throw modelNotFound(id);
    return c.json(adapterModelJson(adapter, id));
  });

  return app;
}
