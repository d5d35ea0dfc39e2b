import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** A model folder found on SWITCHYARD_MODEL_PATH (default ./models:../shared/models), from the repo root. */
export function findModel(name: string): string {
  const searchPath = process.env.SWITCHYARD_MODEL_PATH ?? "./models:../shared/models";
  for (const entry of searchPath.split(":").filter(Boolean)) {
    const dir = join(isAbsolute(entry) ? entry : resolve(REPO_ROOT, entry), name);
    if (existsSync(join(dir, "config.json"))) return dir;
  }
  throw new Error(`model ${name} not found on ${searchPath}`);
}
