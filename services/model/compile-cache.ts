/**
 * On-disk cache of compiled decoder graphs, so a restart loads the .onnx files instead of rebuilding.
 *
 * Layout: `<cacheDir>/<model key>/` per model, its key the weights' identity
 * (services/model/safetensors.ts `identity`: sizes, mtimes and headers, not a content hash), the
 * config, the compiler version, every option that changes the weights' bytes (a weight format
 * is one) and whether the model is served in place: so a model × weight format has one folder, holding
 *   weights.bin + weights.json   ONE copy of the initializers for all variants (./weight-file.ts)
 *   <variant key>.onnx           one per graph variant (prefill/decode, LoRA or not, ...), its
 *                                large initializers all external data in weights.bin
 * A variant's .onnx is written only after the weights it references are committed, so an existing
 * .onnx is a complete compilation: a warm start reads no weights at all.
 *
 * Served in place (`servedInPlace`: F32 serving graphs of safetensors whose tensors are all F32 in one
 * folder, as llama.cpp maps its GGUF): the graphs reference the large source tensors where they lie
 * (./llama/weights.ts `locateInPlace`), nothing is copied, and there is no weights.bin; what is small or
 * derived (norms, rotary tables, small stacked projections) is inline in each .onnx. Load the graphs
 * with `dataFolder` as onnxruntime's external data folder. A cold start then reads and writes no
 * weights: the 4-layer TinyLlama shape starts cold in about 0.15 s instead of 2–5 s. The cache relies on the
 * source files staying put; a changed file has a new identity (a new folder), and the background
 * check below catches a file rewritten under the same identity.
 *
 * Compiling several variants in one call derives each packed weight once and writes it once
 * (./llama/weights.ts `shareDerived`); a variant compiled later appends only what the file lacks.
 */
import { createHash } from "node:crypto";
import { access, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { DecoderConfig } from "./config.ts";
import { buildDecoderGraph, DECODER_COMPILER_VERSION, normalizeDecoderOptions, type DecoderOptions, type DecoderWeights } from "./decoder.ts";
import { emitOnnx, writeFileAtomically } from "./graph/onnx.ts";
import { shareDerived } from "./llama/weights.ts";
import { WeightFileWriter, withWeightFileLock } from "./weight-file.ts";

export interface CompileRequest {
  config: DecoderConfig;
  /** `identity` names the weights' bytes (safetensors.ts `WeightStore.identity`). */
  weights: DecoderWeights & { identity: string };
  /** Folder holding compiled graphs; see `defaultCompileCacheDir`. */
  cacheDir: string;
}

export interface CompiledGraph {
  modelPath: string;
  /** The folder holding the files this graph's external data references (weights.bin, or the source when served in place). */
  dataFolder: string;
  key: string;
  /** True when the graph was found in the cache. */
  cached: boolean;
}

export interface CompiledDecoder extends CompiledGraph {}

export interface CompiledModel<V extends string> {
  /** The model folder's key (weights, config, compiler, weight format). */
  modelKey: string;
  dir: string;
  /** Whether `graphs` reference the source weights in place (then `dir` holds no weight file). */
  inPlace: boolean;
  /** The folder of the weights all `graphs` reference: `dir` (its weights.bin), or the source's. */
  dataFolder: string;
  graphs: Record<V, CompiledGraph>;
  /** Tensors this call appended to the weight file (0 on a warm start). */
  appendedTensors: number;
}

/** A tensor every decoder has, located to find the folder of weights served in place. */
const EMBEDDING = "model.embed_tokens.weight";

/** Options that shape the graph only; every other (normalised) option changes the weights and so the model folder. */
const GRAPH_ONLY_OPTIONS: ReadonlySet<string> = new Set(["lora", "fused", "kvOutput", "decodeOnly", "virtualTokens"]);

export function defaultCompileCacheDir(dataDir = process.env.SWITCHYARD_DATA_DIR ?? "./data"): string {
  return join(dataDir, "compiled");
}

/** The model folder's key: weights identity, config, compiler version, the weight-changing options and serving in place. */
export function modelKey(config: DecoderConfig, identity: string, options: DecoderOptions = {}, inPlace = false): string {
  const weightOptions = Object.entries(normalizeDecoderOptions(options)).filter(([name]) => !GRAPH_ONLY_OPTIONS.has(name));
  return shortHash([DECODER_COMPILER_VERSION, identity, config, weightOptions, ...(inPlace ? ["in place"] : [])]);
}

/** Whether graphs of `options` are served from `weights` in place: F32 serving (fused) graphs of weights that can be (see the header). */
export function servedInPlace(weights: DecoderWeights, options: DecoderOptions = {}): boolean {
  const { weights: format, fused } = normalizeDecoderOptions(options);
  return weights.locate !== undefined && format === "f32" && fused;
}

/** A variant's key: its graph-shaping options (unique within a model folder). */
export function variantKey(options: DecoderOptions = {}): string {
  const graphOptions = Object.entries(normalizeDecoderOptions(options)).filter(([name]) => GRAPH_ONLY_OPTIONS.has(name));
  return shortHash(graphOptions);
}

/** The full key of one compiled graph (model and variant). */
export function compileKey(config: DecoderConfig, identity: string, options: DecoderOptions = {}): string {
  return `${modelKey(config, identity, options)}/${variantKey(options)}`;
}

/**
 * Returns the compiled graphs of `variants` (same weight-changing options in all), building and
 * writing the missing ones. All of them reference one copy of the weights: the folder's weight file,
 * or the source files when served in place.
 */
export async function compileDecoders<V extends string>(request: CompileRequest, variants: Record<V, DecoderOptions>): Promise<CompiledModel<V>> {
  const names = Object.keys(variants) as V[];
  if (names.length === 0) throw new Error("compileDecoders needs at least one variant");
  const { weights } = request;
  const keys = names.map((n) => modelKey(request.config, weights.identity, variants[n], servedInPlace(weights, variants[n])));
  if (new Set(keys).size !== 1) throw new Error("compileDecoders: the variants change the weights differently; compile them apart");
  const dir = join(request.cacheDir, keys[0]!);
  const inPlace = servedInPlace(weights, variants[names[0]!]);
  const dataFolder = inPlace ? dirname(weights.locate!(EMBEDDING).path) : dir;
  const graphOf = (n: V, cached: boolean): CompiledGraph => ({ modelPath: join(dir, `${variantKey(variants[n])}.onnx`), dataFolder, key: `${keys[0]}/${variantKey(variants[n])}`, cached });
  const missing = async (): Promise<V[]> => {
    const present = await Promise.all(names.map((n) => exists(graphOf(n, true).modelPath)));
    return names.filter((_, i) => !present[i]);
  };

  let toBuild = await missing();
  let appendedTensors = 0;
  if (toBuild.length > 0) {
    await withWeightFileLock(dir, async () => {
      toBuild = await missing(); // another process may have compiled them meanwhile
      if (toBuild.length === 0) return;
      const targets = toBuild.map((n): [string, DecoderOptions] => [graphOf(n, false).modelPath, variants[n]]);
      if (inPlace) await buildInPlace(request, targets);
      else appendedTensors = await build(request, dir, targets);
    });
  }
  const graphs = Object.fromEntries(names.map((n) => [n, graphOf(n, !toBuild.includes(n))])) as Record<V, CompiledGraph>;
  return { modelKey: keys[0]!, dir, inPlace, dataFolder, graphs, appendedTensors };
}

/** One variant; see `compileDecoders`. */
export async function compileDecoder(request: CompileRequest & { options?: DecoderOptions }): Promise<CompiledDecoder> {
  const { graphs } = await compileDecoders(request, { graph: request.options ?? {} });
  return graphs.graph;
}

/** Builds the graphs, places their initializers in the weight file, commits it, then writes the .onnx files. */
async function build(request: CompileRequest, dir: string, targets: [string, DecoderOptions][]): Promise<number> {
  const writer = await WeightFileWriter.open(dir);
  const weights = shareDerived(request.weights);
  const models: [string, Uint8Array][] = [];
  try {
    for (const [path, options] of targets) {
      const graph = buildDecoderGraph(request.config, weights, options);
      models.push([path, emitOnnx(graph, { place: (name, bytes) => writer.place(name, bytes) }).model]);
    }
  } finally {
    writer.closeReader();
  }
  const appended = writer.appended;
  await writer.commit();
  for (const [path, model] of models) await writeFileAtomically(path, [model]);
  return appended;
}

/** Builds the graphs served in place and writes their .onnx files: no weights are read or written but the small inline ones. */
async function buildInPlace(request: CompileRequest, targets: [string, DecoderOptions][]): Promise<void> {
  const weights = shareDerived(request.weights);
  for (const [path, options] of targets) {
    const { model } = emitOnnx(buildDecoderGraph(request.config, weights, options), { referenceFiles: true });
    await writeFileAtomically(path, [model]);
  }
}

function shortHash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 32);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

const SOURCE_RECORD = "source.json";

export type WeightsCheck = "unchanged" | "recorded" | "changed";

/**
 * The background half of the identity policy (services/model/safetensors.ts): the first full content
 * hash of a model folder's source weights is recorded in it (`source.json`); a later one that differs
 * means the weights changed under an unchanged identity (same sizes, headers and mtimes), and the
 * folder is removed so the next start compiles afresh. Sessions already running keep the weights
 * they mapped (the compiled copy, consistent in itself).
 */
export async function checkSourceWeights(dir: string, contentHash: () => Promise<string>, signal?: AbortSignal): Promise<WeightsCheck> {
  const path = join(dir, SOURCE_RECORD);
  const recorded = await readFile(path, "utf8").then((t) => (JSON.parse(t) as { sha256: string }).sha256, () => undefined);
  const actual = await contentHash();
  signal?.throwIfAborted(); // the engine closed: its folder may be going away, so write nothing
  if (recorded === undefined) {
    await writeFileAtomically(path, [new TextEncoder().encode(JSON.stringify({ sha256: actual }))]);
    return "recorded";
  }
  if (recorded === actual) return "unchanged";
  await rm(dir, { recursive: true, force: true });
  return "changed";
}
