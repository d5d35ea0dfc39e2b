/**
 * Model resolution: a `--model` value (or none) -> a local model folder. Tried in order: an
 * existing folder path, a name on the model search path, a Hugging Face repo id (downloaded into
 * the cache). With no spec, the first model on the search path, else the default Hub model.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { downloadModel, parseRepoSpec, type DownloadProgress } from "./hub.ts";

export const DEFAULT_HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct";
export const DEFAULT_MODEL_PATH = "./models:../shared/models";

export interface ResolveOptions {
  /** Folders holding model folders, tried in order. */
  searchPath: string[];
  cacheDir: string;
  hubEndpoint?: string;
  onProgress?: (progress: DownloadProgress) => void;
  fetchImpl?: typeof fetch;
  /** Hugging Face access token for gated or private repos. */
  token?: string;
}

/** Options from the environment: SWITCHYARD_MODEL_PATH, SWITCHYARD_CACHE_DIR, HF_ENDPOINT, HF_TOKEN. */
export function resolveOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, baseDir = process.cwd()): ResolveOptions {
  const searchPath = (env.SWITCHYARD_MODEL_PATH ?? DEFAULT_MODEL_PATH)
    .split(":")
    .filter(Boolean)
    .map((entry) => resolve(baseDir, entry));
  const cacheDir = env.SWITCHYARD_CACHE_DIR ? resolve(baseDir, env.SWITCHYARD_CACHE_DIR) : join(homedir(), ".cache", "switchyard", "models");
  return { searchPath, cacheDir, hubEndpoint: env.HF_ENDPOINT || undefined, token: env.HF_TOKEN || undefined };
}

/** A model folder holds a config.json and weights. */
export function isModelFolder(dir: string): boolean {
  return (
    existsSync(join(dir, "config.json")) &&
    (existsSync(join(dir, "model.safetensors")) || existsSync(join(dir, "model.safetensors.index.json")))
  );
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The first model folder on the search path: an entry itself, or its subfolders in name order. */
export function firstModelOnPath(searchPath: string[]): string | undefined {
  for (const entry of searchPath) {
    if (!isDirectory(entry)) continue;
    if (isModelFolder(entry)) return entry;
    const children = readdirSync(entry).sort().map((name) => join(entry, name));
    const found = children.find((child) => isDirectory(child) && isModelFolder(child));
    if (found) return found;
  }
  return undefined;
}

export async function resolveModel(spec: string | undefined, options: ResolveOptions): Promise<string> {
  const { cacheDir, hubEndpoint, onProgress, fetchImpl, token } = options;
  const hub = { cacheDir, hubEndpoint, onProgress, fetchImpl, token };
  if (spec === undefined || spec.trim() === "") {
    return firstModelOnPath(options.searchPath) ?? downloadModel(parseRepoSpec(DEFAULT_HUB_MODEL)!, hub);
  }
  if (isDirectory(spec)) {
    if (!isModelFolder(spec)) throw new Error(`${spec} is not a model folder (needs config.json and model.safetensors or model.safetensors.index.json)`);
    return resolve(spec);
  }
  const onPath = options.searchPath.map((entry) => join(entry, spec)).find((dir) => isDirectory(dir) && isModelFolder(dir));
  if (onPath) return onPath;
  const repo = parseRepoSpec(spec);
  if (!repo) {
    throw new Error(
      `unknown model "${spec}": not a folder, not on the model search path (${options.searchPath.join(":")}), and not a Hugging Face repo id (owner/name[@revision])`,
    );
  }
  return downloadModel(repo, hub);
}
