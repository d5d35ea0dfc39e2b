/**
 * The engine side by side with llama.cpp (node-llama-cpp's prebuilt CPU build) on the same weights,
 * written as GGUF by bench/gguf.ts: stories260k and a random model with TinyLlama-1.1B's layer shapes
 * (4 layers). Every measurement runs in its own process (bench/peer-child.ts), so load time and peak RSS
 * are each side's own; rounds alternate the sides (A/B, then B/A) and keep each side's best, since on a
 * shared machine the best run is the least disturbed. One thread each; llama.cpp also at two threads.
 * Each format runs on both sides: F32, and the engine's int8 / int4 (SWITCHYARD_WEIGHTS) against llama.cpp's
 * Q8_0 / Q4_0 of the same weights, with ratios against the engine's F32 and against llama.cpp at the same format.
 * The engine's F32 runs in both of its weight-memory modes (mapped: one mapped file shared by four sessions;
 * packed: one prepacked session), each with a compile cache of its own, so its first run is a cold start
 * (compiling) and later ones warm; its quantized sides run in their default mode (packed).
 * Memory is PSS (bench/resident.ts): RSS counts the mapped weight file once per session.
 * Run alone: `npm run bench -- engine vs-llama-cpp` (BENCH_PEER_ROUNDS, default 2; BENCH_PEER_MODELS=stories260k,tinyllama-4;
 * BENCH_PEER_FORMATS=F32,Q8_0,Q4_0 picks formats, F32 always runs; BENCH_PEER_TWO_THREADS=0 leaves out llama.cpp at two threads).
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { SERVING_ALLOCATOR_ENV } from "../hosts/node/allocator-env.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import type { WeightFormat } from "../services/model/quantize.ts";
import { loadTokenizer } from "../services/model/tokenizer.ts";
import { writeGguf, type GgufWeightType } from "./gguf.ts";
import type { WeightMemory } from "../services/inference/engine.ts";
import type { PeerJob, PeerResult } from "./peer-child.ts";
import { tinyLlamaShape, writeSyntheticModel } from "./synthetic-model.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CHILD = join(ROOT, "bench", "peer-child.ts");
const run = promisify(execFile);

export interface Side {
  runner: PeerJob["runner"];
  weights: GgufWeightType;
  threads: number;
  /** The engine's `weightMemory` (services/inference/engine.ts). */
  memory?: WeightMemory;
}

export interface SideResult extends Side {
  label: string;
  /** Best over the rounds (rates: highest; load and memory: lowest). */
  best: PeerResult;
  /** The engine's first load in a fresh compile cache (later rounds load compiled graphs). */
  coldLoadMs?: number;
}

export interface ModelComparison {
  model: string;
  sides: SideResult[];
  /** Engine F32 over llama.cpp F32, one thread each, per metric (above 1: the engine is ahead; for load and RSS, below 1). */
  ratios: Record<keyof PeerResult, number>;
  /** Per quantized format the engine ran: its rates over the engine's F32 and over llama.cpp at the same format. */
  formatRatios: FormatRatios[];
}

export interface FormatRatios {
  format: GgufWeightType;
  engine: string;
  overEngineF32: Record<(typeof RATES)[number], number>;
  overLlamaCpp: Record<(typeof RATES)[number], number>;
}

/** The engine's format matching each GGUF type: llama.cpp's Q8_0 / Q4_0 are blocks of 32; the engine's int8 is per channel. */
const ENGINE_FORMAT: Record<GgufWeightType, WeightFormat> = { F32: "f32", Q8_0: "int8", Q4_0: "int4" };
const FORMATS = (process.env.BENCH_PEER_FORMATS ?? "F32,Q8_0,Q4_0").split(",").filter((f): f is GgufWeightType => f === "Q8_0" || f === "Q4_0");

/** The engine F32 and llama.cpp F32 come first: the ratios compare them. */
const SIDES: Side[] = [
  { runner: "engine", weights: "F32", threads: 1, memory: "mapped" },
  { runner: "llama.cpp", weights: "F32", threads: 1 },
  { runner: "engine", weights: "F32", threads: 1, memory: "packed" },
  // Quantized weights run in their default mode, packed (services/inference/engine.ts `WeightMemory`).
  ...FORMATS.flatMap((weights) => [{ runner: "engine", weights, threads: 1, memory: "packed" } satisfies Side, { runner: "llama.cpp", weights, threads: 1 } satisfies Side]),
  // Slow on a busy 2-core machine (its threads spin at every barrier): BENCH_PEER_TWO_THREADS=0 leaves it out.
  ...(process.env.BENCH_PEER_TWO_THREADS === "0" ? [] : [{ runner: "llama.cpp", weights: "F32", threads: 2 } satisfies Side]),
];
const label = (s: Side) =>
  `${s.runner} ${s.runner === "engine" ? ENGINE_FORMAT[s.weights] : s.weights}${s.memory ? ` ${s.memory}` : ""}${s.threads === 1 ? "" : `, ${s.threads} threads`}`;
const RATES = ["prefill256", "decode1", "decode8", "decode32"] as const;
const LOWER_IS_BETTER = ["loadMs", "peakRssMiB", "peakPssMiB", "pssMiB", "weightsMiB", "anonymousMiB", "otherMiB"] as const;

interface PreparedModel {
  name: string;
  hfDir: string;
  gguf: Record<GgufWeightType, string>;
  cacheDir: string;
  decodeTokens: number;
  sequenceTokens: number;
}

async function prepare(name: string, work: string): Promise<PreparedModel> {
  const stories = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, ROOT));
  let hfDir = stories;
  if (name !== "stories260k") {
    const layers = Number(/^tinyllama-(\d+)$/.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(layers)) throw new Error(`unknown model '${name}' (stories260k, tinyllama-N)`);
    hfDir = join(work, name);
    await writeSyntheticModel(hfDir, tinyLlamaShape(layers), stories);
  }
  const gguf = {} as Record<GgufWeightType, string>;
  for (const type of ["F32", "Q8_0", "Q4_0"] as const) gguf[type] = (await writeGguf(hfDir, join(work, `${name}-${type}.gguf`), type)).path;
  const small = name === "stories260k";
  return { name, hfDir, gguf, cacheDir: join(work, `${name}-compiled`), decodeTokens: small ? 256 : 24, sequenceTokens: small ? 128 : 12 };
}

async function measure(model: PreparedModel, side: Side, prompt: number[]): Promise<PeerResult> {
  const job: PeerJob = {
    runner: side.runner,
    path: side.runner === "engine" ? model.hfDir : model.gguf[side.weights],
    threads: side.threads,
    // Each engine side its own compile cache, so each has a cold start of its own.
    cacheDir: `${model.cacheDir}-${side.memory ?? "none"}-${side.weights}`,
    weightMemory: side.memory,
    weights: side.runner === "engine" ? ENGINE_FORMAT[side.weights] : undefined,
    prompt,
    decodeTokens: model.decodeTokens,
    sequenceTokens: model.sequenceTokens,
  };
  // The engine runs with the allocator setting the platform starts with; llama.cpp as a node-llama-cpp user runs it.
  const env = side.runner === "engine" ? { ...process.env, ...SERVING_ALLOCATOR_ENV } : process.env;
  const { stdout } = await run(process.execPath, ["--import", "tsx", CHILD, JSON.stringify(job)], { cwd: ROOT, env, maxBuffer: 1 << 24 });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as PeerResult;
}

function bestOf(results: PeerResult[]): PeerResult {
  const best = { ...results[0]! };
  for (const r of results.slice(1)) {
    for (const k of RATES) best[k] = Math.max(best[k], r[k]);
    for (const k of LOWER_IS_BETTER) best[k] = Math.min(best[k], r[k]);
  }
  return best;
}

async function compare(model: PreparedModel, prompt: number[], rounds: number): Promise<ModelComparison> {
  const results = new Map<Side, PeerResult[]>(SIDES.map((s) => [s, []]));
  const coldLoadMs = new Map<Side, number>();
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? SIDES : [...SIDES].reverse();
    for (const side of order) {
      const result = await measure(model, side, prompt);
      if (side.runner === "engine" && !coldLoadMs.has(side)) coldLoadMs.set(side, result.loadMs);
      results.get(side)!.push(result);
      process.stderr.write(`  ${model.name}, round ${round + 1}: ${label(side)} done\n`);
    }
  }
  const sides: SideResult[] = SIDES.map((s) => {
    // The engine's first run compiles its graphs: its load time and peak are the cold start's, kept apart.
    const runs = results.get(s)!;
    const warm = s.runner === "engine" && runs.length > 1 ? runs.slice(1) : runs;
    return { ...s, label: label(s), best: bestOf(warm), coldLoadMs: coldLoadMs.get(s) };
  });
  const [ours, theirs] = [sides[0]!.best, sides[1]!.best];
  const ratios = Object.fromEntries((Object.keys(ours) as (keyof PeerResult)[]).map((k) => [k, ours[k] / theirs[k]])) as Record<keyof PeerResult, number>;
  const side = (runner: Side["runner"], weights: GgufWeightType) => sides.find((s) => s.runner === runner && s.weights === weights && s.threads === 1)!;
  const over = (a: PeerResult, b: PeerResult) => Object.fromEntries(RATES.map((k) => [k, a[k] / b[k]])) as FormatRatios["overEngineF32"];
  const formatRatios = FORMATS.map((format) => {
    const engine = side("engine", format);
    return { format, engine: engine.label, overEngineF32: over(engine.best, ours), overLlamaCpp: over(engine.best, side("llama.cpp", format).best) };
  });
  return { model: model.name, sides, ratios, formatRatios };
}

export async function benchSideBySide(models = (process.env.BENCH_PEER_MODELS ?? "stories260k,tinyllama-4").split(","), rounds = Number(process.env.BENCH_PEER_ROUNDS ?? 2)): Promise<ModelComparison[]> {
  const work = await mkdtemp(join(tmpdir(), "sy-bench-peer-"));
  try {
    const tokenizer = await loadTokenizer(await resolveModel("stories260k", resolveOptionsFromEnv(process.env, ROOT)));
    const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. ";
    const prompt = tokenizer.encode(text.repeat(20)).slice(0, 256);
    const out: ModelComparison[] = [];
    for (const name of models) {
      const model = await prepare(name, work);
      out.push(await compare(model, prompt, rounds));
      printSideBySide(out.slice(-1)); // each model's table as soon as it is measured
    }
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function printSideBySide(comparisons: ModelComparison[]): void {
  const metrics: [keyof PeerResult, string, string][] = [
    ["decode1", "decode, batch 1", "tokens/s"],
    ["prefill256", "prefill, 256-token prompt", "tokens/s"],
    ["decode8", "decode, 8 sequences", "tokens/s"],
    ["decode32", "decode, 32 sequences", "tokens/s"],
    ["loadMs", "load (warm for the engine)", "ms"],
    ["peakRssMiB", "peak RSS (double counts a file mapped twice)", "MiB"],
    ["peakPssMiB", "peak PSS", "MiB"],
    ["pssMiB", "resident after the runs (PSS)", "MiB"],
    ["weightsMiB", "  of it the weight file's pages", "MiB"],
    ["anonymousMiB", "  anonymous (KV, heaps, packed copies)", "MiB"],
    ["otherMiB", "  the rest (code, libraries)", "MiB"],
    ["weightFileMiB", "weight file on disk", "MiB"],
  ];
  for (const c of comparisons) {
    console.log(`\n${c.model}: engine vs llama.cpp (node-llama-cpp), best of the A/B rounds`);
    const heads = ["metric", ...c.sides.map((s) => s.label), "engine / llama.cpp F32"];
    const rows = metrics.map(([key, name, unit]) => [
      `${name} (${unit})`,
      ...c.sides.map((s) => format(s.best[key])),
      c.ratios[key].toFixed(2) + "×",
    ]);
    rows.push(["cold load, compiling for the engine (ms)", ...c.sides.map((s) => (s.coldLoadMs === undefined ? "" : format(s.coldLoadMs))), ((c.sides[0]!.coldLoadMs ?? NaN) / c.sides[1]!.best.loadMs).toFixed(2) + "×"]);
    rows.push(["resident / weight file", ...c.sides.map((s) => (s.best.pssMiB / s.best.weightFileMiB).toFixed(2) + "×"), ""]);
    printAligned([heads, ...rows]);
    if (c.formatRatios.length === 0) continue;
    console.log(`\n${c.model}: quantized engine, ratios (the goals: int8 batch 1 ≥ 1.8× F32 and ≥ Q8_0; int4 ≥ 3× F32 and ≥ Q4_0; 32 sequences ≥ 3× llama.cpp)`);
    const rateNames: [(typeof RATES)[number], string][] = [["decode1", "decode, batch 1"], ["decode32", "decode, 32 sequences"], ["decode8", "decode, 8 sequences"], ["prefill256", "prefill 256"]];
    const ratioHeads = ["metric", ...c.formatRatios.flatMap((r) => [`${r.engine} / engine F32`, `${r.engine} / llama.cpp ${r.format}`])];
    const ratioRows = rateNames.map(([key, name]) => [name, ...c.formatRatios.flatMap((r) => [r.overEngineF32[key].toFixed(2) + "×", r.overLlamaCpp[key].toFixed(2) + "×"])]);
    printAligned([ratioHeads, ...ratioRows]);
  }
}

function printAligned(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  "));
}

const format = (v: number) => v.toFixed(v < 100 ? 1 : 0);

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const comparisons = await benchSideBySide();
  await mkdir(join(ROOT, "bench-results"), { recursive: true });
  await writeFile(join(ROOT, "bench-results", "engine-vs-llama-cpp.json"), JSON.stringify({ section: "engine-vs-llama-cpp", comparisons }, null, 2) + "\n");
}
