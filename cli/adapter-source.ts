/**
 * `generate --adapter NAME|PATH`: a PEFT adapter folder (adapter_config.json +
 * adapter_model.safetensors), or an adapter in the data dir's catalog by id, name or name@version.
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { AdapterInfo } from "../ports/adapters.ts";
import { CONFIG_FILE, LocalAdapterBlobs, MODEL_FILE, StoreAdapterCatalog, loadAdapter, type BaseModelShape } from "../services/adapters/index.ts";
import type { AdapterWeights } from "../services/model/prompt-tuning.ts";
import { openDatabase } from "../services/store/db.ts";

export interface AdapterContext {
  dataDir: string;
  baseId: string;
  shape: BaseModelShape;
  maxRank: number;
}

export async function loadCliAdapter(ref: string, context: AdapterContext): Promise<AdapterWeights> {
  const limits = { maxRank: context.maxRank };
  if (existsSync(ref) && statSync(ref).isDirectory()) {
    const [config, model] = await Promise.all([readFile(join(ref, CONFIG_FILE)), readFile(join(ref, MODEL_FILE))]).catch(() => {
      throw new Error(`${ref} is not a PEFT adapter folder: it needs ${CONFIG_FILE} and ${MODEL_FILE}`);
    });
    return loadAdapter(ref, { config: new Uint8Array(config), model: new Uint8Array(model) }, context.shape, limits);
  }
  const dbFile = join(context.dataDir, "switchyard.db");
  if (!existsSync(dbFile)) throw new Error(`no adapter folder ${ref}, and no adapter catalog in ${context.dataDir} to find it by name`);
  const database = openDatabase(dbFile);
  try {
    const blobs = new LocalAdapterBlobs(join(context.dataDir, "adapters"));
    const catalog = new StoreAdapterCatalog({ db: database.db, blobs, base: { id: context.baseId, shape: context.shape }, limits, maxUploadBytes: 0 });
    const id = findAdapter(await catalog.list({ admin: true }), ref);
    return loadAdapter(id, await blobs.read(id), context.shape, limits);
  } finally {
    database.close();
  }
}

/** An adapter id, or the one adapter called `name` (`name@version`: that version; else the newest). */
function findAdapter(all: AdapterInfo[], ref: string): string {
  const byId = all.find((a) => a.id === ref);
  if (byId) return byId.id;
  const m = /^(.+)@(\d+)$/.exec(ref);
  const [name, version] = m ? [m[1]!, Number(m[2])] : [ref, undefined];
  const matches = all.filter((a) => a.name === name && (version === undefined || a.version === version));
  if (matches.length === 0) throw new Error(`no adapter folder and no stored adapter "${ref}"`);
  const owners = new Set(matches.map((a) => a.tenantId));
  if (owners.size > 1) throw new Error(`several tenants have an adapter named "${ref}"; give its id: ${matches.map((a) => a.id).join(", ")}`);
  return matches[0]!.id;
}
