/** Shared fixtures for the adapter suites: base-model shapes, archives and the shared model's location. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { strToU8, zipSync } from "fflate";
import tar from "tar-stream";
import { gzipSync } from "node:zlib";
import type { BaseModelShape } from "../../services/adapters/peft.ts";
import { AdapterError } from "../../services/adapters/errors.ts";
import { tinyConfig } from "./tiny-model.ts";
import type { RandomAdapterOptions } from "../../services/adapters/synthetic.ts";
import { parseSafetensorsBytes } from "../../services/model/safetensors.ts";
import type { DecoderConfig } from "../../services/model/config.ts";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export function findSharedModel(name: string): string {
  const searchPath = process.env.SWITCHYARD_MODEL_PATH ?? "./models:../shared/models";
  for (const entry of searchPath.split(":").filter(Boolean)) {
    const dir = resolve(repoRoot, entry, name);
    if (existsSync(join(dir, "config.json"))) return dir;
  }
  throw new Error(`model ${name} not found on the search path ${searchPath}`);
}

/** stories260k's dims (the shared model's config.json is read by the model-loading suites). */
export const STORIES: BaseModelShape = { numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 };

export const utf8 = (s: string) => strToU8(s);

export function zipOf(files: Record<string, Uint8Array>): Uint8Array {
  return zipSync(files, { level: 6 });
}

export async function tarGzOf(entries: Array<{ name: string; data?: Uint8Array; type?: "file" | "symlink" | "directory"; linkname?: string }>): Promise<Uint8Array> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === "symlink") pack.entry({ name: e.name, type: "symlink", linkname: e.linkname ?? "/etc/passwd" });
    else if (e.type === "directory") pack.entry({ name: e.name, type: "directory" });
    else pack.entry({ name: e.name, size: e.data!.byteLength }, Buffer.from(e.data!));
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

// --- models for the correctness suite ---

/** A small random Llama with GQA and sizes that are not powers of two. */
export const TINY_LLAMA: DecoderConfig = tinyConfig({ hiddenSize: 40, intermediateSize: 67, numLayers: 3, numHeads: 10, numKvHeads: 5, vocabSize: 61 });


// --- PEFT adapters and their merged-weight references ---

export interface BaseWeights {
  has(name: string): boolean;
  getF32(name: string): Float32Array;
}

/** An adapter recipe and the scale PEFT gives module `name` of rank `r`, written out by hand. */
export interface Recipe {
  options: RandomAdapterOptions;
  scale(name: string, r: number): number;
}

export const RECIPES: Recipe[] = [
  { options: { rank: 4, alpha: 8, targets: "all-linear", seed: 11 }, scale: (_, r) => 8 / r },
  {
    options: { rank: 8, alpha: 16, useRslora: true, targets: ["q_proj", "v_proj", "o_proj"], rankPattern: { o_proj: 2 }, seed: 12 },
    scale: (_, r) => 16 / Math.sqrt(r),
  },
  {
    options: { rank: 3, alpha: 6, targets: ["gate_proj", "up_proj", "down_proj"], alphaPattern: { "layers.1.mlp.down_proj": 1 }, dtype: "BF16", seed: 13 },
    scale: (name, r) => (name === "model.layers.1.mlp.down_proj" ? 1 : 6) / r,
  },
  { options: { rank: 16, alpha: 4, targets: ["k_proj", "down_proj"], seed: 14 }, scale: (_, r) => 4 / r },
];

/** W + s·B·A for every module in the PEFT file, in Hugging Face [out, in] layout. */
export function mergedLookup(base: BaseWeights, model: Uint8Array, recipe: Recipe): (name: string) => Float32Array {
  const peft = parseSafetensorsBytes(model);
  const merged = new Map<string, Float32Array>();
  for (const tensor of peft.names().filter((n) => n.endsWith(".lora_A.weight"))) {
    const module = tensor.slice("base_model.model.".length, -".lora_A.weight".length);
    const [r, inSize] = peft.info(tensor).shape as [number, number];
    const A = peft.getF32(tensor);
    const B = peft.getF32(tensor.replace("lora_A", "lora_B"));
    const outSize = B.length / r;
    const s = recipe.scale(module, r);
    const w = base.getF32(`${module}.weight`);
    for (let o = 0; o < outSize; o++) {
      for (let i = 0; i < inSize; i++) {
        let delta = 0;
        for (let k = 0; k < r; k++) delta += B[o * r + k]! * A[k * inSize + i]!;
        w[o * inSize + i] += s * delta;
      }
    }
    merged.set(`${module}.weight`, w);
  }
  return (name) => merged.get(name) ?? base.getF32(name);
}


/** The AdapterError a promise is refused with (fails the test if it resolves or throws something else). */
export async function refusal(promise: Promise<unknown>): Promise<AdapterError> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof AdapterError) return e;
    throw e;
  }
  throw new Error("expected a refusal");
}
