import { Hono } from "hono";
import { z } from "zod";
import { ADAPTER_NAME, type AdapterCatalog, type AdapterInfo } from "../../ports/adapters.ts";
import type { Tenants } from "../../ports/tenants.ts";
import type { AppEnv } from "../env.ts";
import { ApiError, badRequest, notFound, withParam } from "../errors.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { deleteAdapter } from "./adapters.ts";

export interface LoraLoadingDeps {
  /** Reads `{ path }` uploads inside SWITCHYARD_LORA_DIR (and refuses them when it is not set). */
  catalog: AdapterCatalog;
  tenants: Pick<Tenants, "clearDefaultAdapter">;
  /** Whether SWITCHYARD_LORA_DIR is set: checked first, so "loading is off" answers before "already loaded". */
  loadingByPath: boolean;
}

// vLLM also accepts other fields here (load_inplace, lora_int_id); they are ignored.
const loraName = z.string().regex(ADAPTER_NAME, "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
const LoadRequest = z.object({ lora_name: loraName, lora_path: z.string().min(1).max(4096) });
const UnloadRequest = z.object({ lora_name: z.string().min(1).max(200) });
const tags = ["adapters"];

/**
 * vLLM's runtime adapter endpoints, admin only: `POST /v1/load_lora_adapter` publishes the adapter at
 * `lora_path` (inside SWITCHYARD_LORA_DIR) as a public adapter named `lora_name`, as
 * `POST /v1/admin/adapters public=true` does; `POST /v1/unload_lora_adapter` deletes it. Success is
 * vLLM's plain-text message; errors keep the OpenAI JSON shape.
 */
export function loraLoadingRoutes(deps: LoraLoadingDeps): Array<[path: string, routes: Hono<AppEnv>]> {
  const load = new Hono<AppEnv>();
  load.post("/", describe({ summary: LOAD_SUMMARY, tags }), jsonBody(LoadRequest), async (c) => {
    const { lora_name: name, lora_path: path } = c.req.valid("json");
    if (!deps.loadingByPath) throw loadingOff();
    if ((await publicNamed(deps, name)).length > 0) throw badRequest(`The lora adapter '${name}' has already been loaded.`, "lora_name", "adapter_exists");
    await withParam("lora_path", () => deps.catalog.upload({ tenantId: null, name, source: { path } }));
    return c.text(`Success: LoRA adapter '${name}' added successfully.`);
  });

  const unload = new Hono<AppEnv>();
  unload.post("/", describe({ summary: UNLOAD_SUMMARY, tags }), jsonBody(UnloadRequest), async (c) => {
    const { lora_name: name } = c.req.valid("json");
    const versions = await publicNamed(deps, name);
    if (versions.length === 0) throw notFound(`The lora adapter '${name}' cannot be found.`, "lora_name");
    for (const a of versions) await deleteAdapter(deps, a.id, { admin: true }, "lora_name");
    return c.text(`Success: LoRA adapter '${name}' removed successfully.`);
  });

  return [
    ["/load_lora_adapter", load],
    ["/unload_lora_adapter", unload],
  ];
}

const LOAD_SUMMARY =
  "vLLM-compatible (admin key): load the PEFT adapter at `lora_path` (a folder or .zip/.tar.gz inside SWITCHYARD_LORA_DIR; a relative path is read from it) as the public adapter `lora_name`, usable as `model` by every tenant. Answers vLLM's plain-text success message.";
const UNLOAD_SUMMARY =
  "vLLM-compatible (admin key): unload the public adapter `lora_name` (every version); tenants using it as their default fall back to the base model. Answers vLLM's plain-text success message.";

async function publicNamed(deps: LoraLoadingDeps, name: string): Promise<AdapterInfo[]> {
  return (await deps.catalog.list({ admin: true })).filter((a) => a.tenantId === null && a.name === name);
}

const loadingOff = () =>
  new ApiError(
    403,
    "Loading adapters by path is disabled: start Switchyard with SWITCHYARD_LORA_DIR (--lora-dir) set to the folder adapters may be loaded from.",
    "permission_error",
    "lora_path",
    "lora_dir_not_configured",
  );
