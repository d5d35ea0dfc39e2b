/**
 * On-disk cache of compiled decoder graphs, keyed by the model's weight content hash, its config,
 * the compile options and the compiler version, so a restart loads the .onnx instead of rebuilding.
 */
import { createHash } from "node:crypto";
import { access } from "node:fs/promises";
import { join } from "node:path";
import type { DecoderConfig } from "./config.ts";
import { buildDecoderGraph, DECODER_COMPILER_VERSION, normalizeDecoderOptions, type DecoderOptions, type DecoderWeights } from "./decoder.ts";
import { writeOnnx, type OnnxFiles } from "./graph/onnx.ts";

export interface CompileRequest {
  config: DecoderConfig;
  weights: DecoderWeights & { contentHash: string };
  options?: DecoderOptions;
  /** Folder holding compiled graphs; see `defaultCompileCacheDir`. */
  cacheDir: string;
}

export interface CompiledDecoder extends OnnxFiles {
  key: string;
  /** True when the graph was found in the cache. */
  cached: boolean;
}

export function defaultCompileCacheDir(dataDir = process.env.SWITCHYARD_DATA_DIR ?? "./data"): string {
  return join(dataDir, "compiled");
}

export function compileKey(config: DecoderConfig, contentHash: string, options: DecoderOptions = {}): string {
  const canonicalOptions = normalizeDecoderOptions(options);
  return createHash("sha256")
    .update(JSON.stringify([DECODER_COMPILER_VERSION, contentHash, config, canonicalOptions]))
    .digest("hex")
    .slice(0, 32);
}

/** Returns the compiled graph files, building and writing them on a cache miss. */
export async function compileDecoder(request: CompileRequest): Promise<CompiledDecoder> {
  const key = compileKey(request.config, request.weights.contentHash, request.options);
  const dir = join(request.cacheDir, key);
  const files = { modelPath: join(dir, "decoder.onnx"), dataPath: join(dir, "decoder.bin") };
  if ((await exists(files.modelPath)) && (await exists(files.dataPath))) return { ...files, key, cached: true };
  const graph = buildDecoderGraph(request.config, request.weights, request.options);
  return { ...(await writeOnnx(graph, dir, "decoder")), key, cached: false };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
