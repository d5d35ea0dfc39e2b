import { badRequest } from "../errors.ts";
import { defaultStrategyOf, type Strategy } from "../tenant-settings.ts";

export const usesAdapter = (s: Strategy) => s === "adapter" || s === "rag+adapter";
export const usesRetrieval = (s: Strategy) => s === "rag" || s === "rag+adapter";

export interface Plan {
  strategy: Strategy;
  base: string;
  adapterId?: string;
  /** The adapter as responses and usage name it (`name@version`), from the same lookup as its id. */
  adapterName?: string;
  /** A prompt-tuning adapter's virtual tokens: they take context ahead of the prompt. */
  virtualTokens?: number;
}

/** What `model` resolved to for a tenant: the base and, if any, the adapter's id and display name. */
export interface ResolvedPlan {
  base: string;
  adapterId?: string;
  adapterName?: string;
  virtualTokens?: number;
}

interface TenantLike {
  id: string;
  settings: Record<string, unknown>;
}

/** Reads the OpenAI `model` field for a tenant: `BASE`, `BASE:ADAPTER` or `ADAPTER` (the adapter catalog's `resolve`). */
export type ModelResolver = (model: string | undefined, tenant: TenantLike) => Promise<ResolvedPlan>;

/**
 * Decides strategy and adapter. An explicit `strategy` wins. Without one, the tenant's `defaultStrategy`
 * applies; a tenant that never chose one runs `adapter` while it has a default adapter, else `prompt`.
 * A `model` that names an adapter adds the adapter to the strategy (prompt -> adapter, rag -> rag+adapter).
 * The adapter comes from `model`, else the tenant's default adapter.
 */
export async function planRequest(resolveModel: ModelResolver, tenant: TenantLike, model: string | undefined, strategy?: Strategy): Promise<Plan> {
  const resolved = await resolveModel(model, tenant);
  const namesAdapter = model !== undefined && model !== "" && model !== resolved.base;
  let chosen = strategy ?? defaultStrategyOf(tenant.settings, resolved.adapterId !== undefined);
  if (!strategy && namesAdapter && !usesAdapter(chosen)) chosen = chosen === "rag" ? "rag+adapter" : "adapter";
  if (!usesAdapter(chosen)) return { strategy: chosen, base: resolved.base };
  if (!resolved.adapterId) {
    throw badRequest(
      `Strategy '${chosen}' needs an adapter: name one in 'model' (BASE:ADAPTER or ADAPTER) or set the tenant's defaultAdapter.`,
      "strategy",
      "adapter_required",
    );
  }
  const { adapterId, adapterName, virtualTokens } = resolved;
  return { strategy: chosen, base: resolved.base, adapterId, adapterName, ...(virtualTokens ? { virtualTokens } : {}) };
}

/** The strategies a tenant can run: adapter ones only when it has an adapter to use. */
export async function availableStrategies(resolveModel: ModelResolver, tenant: TenantLike, model: string | undefined): Promise<Strategy[]> {
  const hasAdapter = (await resolveModel(model, tenant)).adapterId !== undefined;
  return hasAdapter ? ["prompt", "rag", "adapter", "rag+adapter"] : ["prompt", "rag"];
}
