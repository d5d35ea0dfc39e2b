/**
 * The upload pipeline, whatever the transport: an AdapterSource (archive, the two PEFT files, or a
 * path inside the node's LoRA folder) becomes validated files and the summary a catalog row needs.
 *
 * Order of the checks (each refusal is an AdapterError naming the reason): size, then the form
 * (a pickle `.bin` model is refused before anything is read), then extraction or the LoRA folder's
 * confinement, then PEFT validation against the base (LoRA or prompt tuning, services/adapters/validate.ts). Nothing is written here.
 */
import { PlaneError } from "../../ports/errors.ts";
import type { AdapterSource } from "../../ports/adapters.ts";
import { checkAdapterFiles, extractAdapterArchive, rejectPickle, type AdapterFiles } from "./archive.ts";
import { readLoraPath } from "./lora-dir.ts";
import type { BaseModelShape, PeftLimits } from "./peft.ts";
import { validateAdapter, type AdapterSummary } from "./validate.ts";

export interface UploadRules {
  /** Largest upload (archive or the two files), also the decompressed-size limit. */
  maxBytes: number;
  /** The only folder `{ path }` sources may be read from; undefined: loading by path is off. */
  loraDir?: string;
  base: BaseModelShape;
  limits: PeftLimits;
}

export type { AdapterSummary } from "./validate.ts";

export interface ReadUpload {
  files: AdapterFiles;
  summary: AdapterSummary;
  /** The path as given, for a `{ path }` source (vLLM's lora_path, shown as the adapter's root). */
  sourcePath?: string;
}

/** Reads, extracts and validates an upload; throws before anything is stored. */
export async function readAdapterUpload(source: AdapterSource, rules: UploadRules): Promise<ReadUpload> {
  const files = await filesOf(source, rules);
  const summary = validateAdapter(files, rules.base, rules.limits);
  return { files, summary, ...("path" in source && { sourcePath: source.path }) };
}

async function filesOf(source: AdapterSource, rules: UploadRules): Promise<AdapterFiles> {
  if ("archive" in source) return extractAdapterArchive(source.archive, rules.maxBytes);
  if ("path" in source) {
    if (!rules.loraDir) throw loadingByPathOff();
    return readLoraPath(rules.loraDir, source.path, rules.maxBytes);
  }
  if (source.modelFileName?.endsWith(".bin")) rejectPickle();
  return checkAdapterFiles({ config: source.config, model: source.model }, rules.maxBytes);
}

export const loadingByPathOff = () =>
  new PlaneError(
    "forbidden",
    "Loading adapters by path is disabled: start Switchyard with SWITCHYARD_LORA_DIR (--lora-dir) set to the folder adapters may be loaded from.",
    { code: "lora_dir_not_configured", param: "lora_path" },
  );
