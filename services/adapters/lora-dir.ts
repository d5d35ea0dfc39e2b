import { readFile, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { checkAdapterFiles, extractAdapterArchive, rejectPickle, type AdapterFiles } from "./archive.ts";
import { AdapterError } from "./errors.ts";
import { CONFIG_FILE, MODEL_FILE } from "./blob-store.ts";

const PICKLE_FILE = "adapter_model.bin";

/**
 * Reads a PEFT adapter named by a path on this machine (vLLM's `lora_path`) that must lie inside
 * `root`: a folder with adapter_config.json + adapter_model.safetensors, or a .zip / .tar.gz of one.
 * A relative path is read from `root`. The path is checked as written (no `..` out, no absolute path
 * elsewhere), then again after following every symlink, for the folder and for each file read, so a
 * link cannot lead outside either.
 */
export async function readLoraPath(root: string, given: string, maxBytes: number): Promise<AdapterFiles> {
  const rootReal = await realOrNotFound(root, `the LoRA directory ${root}`);
  const target = resolve(root, given);
  // As written (against the root as configured or as linked): refused before anything outside is even looked at.
  if (!inside(resolve(root), target) && !inside(rootReal, target)) throw outside(given, root);
  const real = await realOrNotFound(target, `lora_path "${given}"`);
  if (!inside(rootReal, real)) throw outside(given, root);
  const info = await stat(real);
  if (info.isFile()) {
    if (info.size > maxBytes) throw new AdapterError("too_large", `lora_path "${given}" is larger than the limit of ${maxBytes} bytes`);
    return extractAdapterArchive(new Uint8Array(await readFile(real)), maxBytes);
  }
  return readFolder(rootReal, real, given, maxBytes);
}

async function readFolder(rootReal: string, dir: string, given: string, maxBytes: number): Promise<AdapterFiles> {
  const [config, model] = await Promise.all([
    confinedFile(rootReal, join(dir, CONFIG_FILE), given),
    confinedFile(rootReal, join(dir, MODEL_FILE), given),
  ]);
  if (!model && (await confinedFile(rootReal, join(dir, PICKLE_FILE), given))) rejectPickle();
  if (!config || !model) throw new AdapterError("missing_file", `lora_path "${given}" needs ${CONFIG_FILE} and ${MODEL_FILE}`);
  const sizes = (await stat(config)).size + (await stat(model)).size;
  if (sizes > maxBytes) throw new AdapterError("too_large", `the adapter at lora_path "${given}" is larger than the limit of ${maxBytes} bytes`);
  const [configBytes, modelBytes] = await Promise.all([readFile(config), readFile(model)]);
  return checkAdapterFiles({ config: new Uint8Array(configBytes), model: new Uint8Array(modelBytes) }, maxBytes);
}

/** A file's real path if it exists and, links followed, lies inside the root; undefined if it does not exist. */
async function confinedFile(rootReal: string, path: string, given: string): Promise<string | undefined> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  if (!inside(rootReal, real)) throw new AdapterError("forbidden", `lora_path "${given}" links outside the LoRA directory`);
  return real;
}

async function realOrNotFound(path: string, what: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new AdapterError("not_found", `no adapter at ${what}`);
    throw e;
  }
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!isAbsolute(rel) && rel.split(sep)[0] !== "..");
}

const outside = (given: string, root: string) =>
  new AdapterError("forbidden", `lora_path "${given}" is outside the LoRA directory (${root}); only adapters under it can be loaded`);
