import type { Tenant } from "../ports/tenants.ts";
import type { ModelResolver } from "./chat/strategy.ts";
import { badRequest } from "./errors.ts";
import type { SettingsCheck } from "./routes/tenant.ts";

/** The adapter plane's say on a settings patch: a `defaultAdapter` given by name, `name@version` or id is stored as the id of one the tenant may use. */
export function defaultAdapterCheck(resolveModel: ModelResolver): SettingsCheck {
  return async (tenant, settings) => ({ ...settings, defaultAdapter: await defaultAdapterId(resolveModel, tenant, settings.defaultAdapter) });
}

async function defaultAdapterId(resolveModel: ModelResolver, tenant: Tenant, ref: string | null | undefined): Promise<string | null | undefined> {
  if (!ref) return ref;
  let adapterId: string | undefined;
  try {
    adapterId = (await resolveModel(ref, { id: tenant.id, settings: {} })).adapterId;
  } catch {
    adapterId = undefined;
  }
  if (!adapterId) throw badRequest(`No adapter '${ref}' that this tenant may use.`, "defaultAdapter", "adapter_not_found");
  return adapterId;
}
