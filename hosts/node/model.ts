import { join, resolve } from "node:path";
import { resolveModel, type ResolveOptions } from "../../services/model/resolve.ts";
import type { Config } from "./config.ts";

/** The node's base model folder: `config.model` on the model search path, downloads cached in the data dir. */
export function resolveNodeModel(config: Config, dataDir: string, onProgress?: ResolveOptions["onProgress"]): Promise<string> {
  return resolveModel(config.model, {
    searchPath: config.modelPath.split(":").filter(Boolean).map((p) => resolve(p)),
    cacheDir: join(dataDir, "models"),
    onProgress,
  });
}

/** The base model's public id: its folder name (`stories260k`, `SmolLM2-135M-Instruct`). */
export function baseModelId(modelDir: string): string {
  return resolve(modelDir).split(/[\\/]/).pop()!;
}
