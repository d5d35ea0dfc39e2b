import type { Context } from "hono";
import { Hono } from "hono";
import { AdapterError } from "../../services/adapters/errors.ts";
import type { AdapterRegistry } from "../../services/adapters/registry.ts";
import type { Adapter } from "../../services/store/schema.ts";
import type { AppEnv } from "../env.ts";
import { ApiError } from "../errors.ts";
import { describe } from "../middleware/body.ts";
import { viewerOf } from "./adapters.ts";

export type ModelCatalog = Pick<AdapterRegistry, "list" | "get" | "findByName" | "defaultFor" | "baseModelId">;

export interface ModelRouteDeps {
  registry: ModelCatalog;
  /** Unix seconds shown as the base model's `created`. */
  baseCreated?: number;
  /** The base model's `root`, as vLLM shows it: the model as configured (folder, name or Hub id); default its id. */
  baseRoot?: string;
}

export interface ResolvedModel {
  base: string;
  adapterId?: string;
}

interface TenantLike {
  id: string;
  settings: Record<string, unknown>;
}

export const modelNotFound = (model: string) =>
  new ApiError(404, `The model '${model}' does not exist or you do not have access to it.`, "invalid_request_error", "model", "model_not_found");

/**
 * Reads the OpenAI `model` field: `BASE`, `BASE:ADAPTER` or `ADAPTER`, where ADAPTER is an adapter
 * id, a name (the caller's own first, else public; newest version) or `name@version`. `BASE` or no
 * model at all means the tenant's default adapter when one is set. Anything else is model_not_found.
 */
export function resolveModelField(model: string | undefined, tenant: TenantLike, registry: ModelCatalog): ResolvedModel {
  const base = registry.baseModelId;
  if (model === undefined || model === "" || model === base) {
    const fallback = registry.defaultFor(tenant);
    return fallback ? { base, adapterId: fallback.id } : { base };
  }
  const ref = model.startsWith(`${base}:`) ? model.slice(base.length + 1) : model;
  const adapter = findAdapter(ref, tenant.id, registry);
  if (!adapter) throw modelNotFound(model);
  return { base, adapterId: adapter.id };
}

/** `resolveModelField` bound to a registry: `(model, tenant) => { base, adapterId? }`. */
export const modelResolver = (registry: ModelCatalog) => (model: string | undefined, tenant: TenantLike) => resolveModelField(model, tenant, registry);

function findAdapter(ref: string, tenantId: string, registry: ModelCatalog): Adapter | undefined {
  const viewer = { tenantId };
  if (ref.startsWith("ad_")) {
    try {
      return registry.get(ref, viewer);
    } catch (e) {
      if (e instanceof AdapterError && e.kind === "not_found") return undefined;
      throw e;
    }
  }
  const m = /^(.+)@(\d+)$/.exec(ref);
  const found = m ? registry.findByName(viewer, m[1]!, Number(m[2])) : registry.findByName(viewer, ref);
  return found?.baseModel === registry.baseModelId ? found : undefined;
}

function modelJson(id: string, created: number, ownedBy: string, extra: Record<string, unknown> = {}) {
  return { id, object: "model", created, owned_by: ownedBy, ...extra };
}

function adapterModelJson(a: Adapter, id: string) {
  return modelJson(id, Math.floor(a.createdAt / 1000), a.tenantId ?? "public", {
    parent: a.baseModel,
    // As vLLM: an adapter's root is where it was loaded from (lora_path), else its folder in the data directory.
    root: a.sourcePath ?? a.path,
    adapter_id: a.id,
    version: a.version,
  });
}

/** The models a tenant may call: the base and, by name, the newest version of each usable adapter. */
function listModels(c: Context<AppEnv>, deps: ModelRouteDeps) {
  const { registry } = deps;
  const base = modelJson(registry.baseModelId, deps.baseCreated ?? 0, "switchyard", { root: deps.baseRoot ?? registry.baseModelId, parent: null });
  const byName = new Map<string, Adapter>();
  for (const a of registry.list(viewerOf(c))) {
    if (a.baseModel !== registry.baseModelId) continue;
    const seen = byName.get(a.name);
    const better = !seen || (seen.tenantId === null && a.tenantId !== null) || (seen.tenantId === a.tenantId && a.version > seen.version);
    if (better) byName.set(a.name, a);
  }
  return [base, ...[...byName.values()].map((a) => adapterModelJson(a, a.name))];
}

/** OpenAI-compatible model listing, mounted at /v1/models. */
export function modelRoutes(deps: ModelRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["models"];

  app.get("/", describe({ summary: "The base model and every adapter the caller may use, as vLLM shows them: `parent` = the base for adapters (null for the base), `root` = the base model as configured, or the adapter's path.", tags }), (c) =>
    c.json({ object: "list", data: listModels(c, deps) }),
  );

  app.get("/:id", describe({ summary: "One model: the base, `BASE:ADAPTER`, an adapter name, `name@version` or adapter id.", tags }), (c) => {
    const id = c.req.param("id");
    const { registry } = deps;
    if (id === registry.baseModelId) return c.json(listModels(c, deps)[0]);
    const ref = id.startsWith(`${registry.baseModelId}:`) ? id.slice(registry.baseModelId.length + 1) : id;
    const adapter = findAdapter(ref, c.get("tenant").id, registry);
    if (!adapter) throw modelNotFound(id);
    return c.json(adapterModelJson(adapter, id));
  });

  return app;
}
