/**
 * Adapter benchmark: cold load of a rank-16 all-linear adapter from disk, switching between
 * resident adapters, and aggregate decode throughput of 32 concurrent sequences with 1, 8 and 32
 * distinct adapters against the same batch on the base model alone.
 *
 * Models: stories260k; a random ~14M-parameter Llama; and random models with the layer shapes of
 * TinyLlama-1.1B and Llama-2-7B (one or two layers, a small vocabulary). How much LoRA costs
 * depends on the model's width: a rank-16 adapter adds 36% to stories260k's arithmetic but 0.6%
 * to a Llama-2-7B layer's, and 32 distinct adapters must each be read once per decode step. The
 * wide models show the regime the issue's anchors (vLLM, S-LoRA, Punica on 7B models) measure.
 * Throughput is measured on the engine's decode graph alone, and for all but the 7B layer also as 32
 * generate() calls through the engine end to end (continuous batching, prefill, sampling).
 *
 * Last, 32 sequences over mixed prompt-tuning and LoRA adapters against base alone
 * (bench/adapters-prompt-tuning.ts, bench-results/adapters-prompt-tuning.json).
 *
 *   npx tsx bench/adapters.ts        (prints tables, writes bench-results/adapters.json)
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as ort from "onnxruntime-node";
import type { GenerateEvent, SamplingParams } from "../ports/index.ts";
import { createAdapterService, type AdapterService } from "../services/adapters/index.ts";
import { LoraSlotTable } from "../services/inference/slot-table.ts";
import { randomPeftAdapter, seededRandom } from "../services/adapters/synthetic.ts";
import { DecoderRunner } from "../services/inference/decoder-runner.ts";
import { createEngine, ENGINE_GRAPHS } from "../services/inference/engine.ts";
import { BatchCache } from "../services/inference/kv-cache.ts";
import { buildLoraTensors, type LoraFeeds } from "../services/inference/lora-feeds.ts";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { buildDecoderGraph, type DecoderWeights } from "../services/model/decoder.ts";
import { LORA_TARGETS, projectionShape } from "../services/model/lora-layout.ts";
import { writeOnnx } from "../services/model/graph/onnx.ts";
import { openWeights, type WeightStore } from "../services/model/safetensors.ts";
import { openDatabase } from "../services/store/db.ts";
import { tenants } from "../services/store/schema.ts";
import { writeSyntheticModel, type SyntheticShape } from "./synthetic-model.ts";
import { requireLora } from "../services/model/prompt-tuning.ts";
import { PROMPT_TUNING_SERVING, promptTuningServing } from "./adapters-prompt-tuning.ts";
import { report } from "./report.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SEQUENCES = 32;
const RANK = 16;
const LOAD_RUNS = 20;
const SWITCH_RUNS = 200;
const DISTINCT = [1, 8, 32];

interface BenchModel {
  name: string;
  source: { shared: string } | { synthetic: SyntheticShape };
  /** Tokens per request when 32 generate() calls also run through the engine; absent: too slow for it. */
  engineMaxTokens?: number;
  /** Decode steps filling the cache before the timed ones, timed steps, interleaved rounds. */
  warmSteps: number;
  timedSteps: number;
  rounds: number;
}

const MODELS: BenchModel[] = [
  { name: "stories260k", source: { shared: "stories260k" }, engineMaxTokens: 48, warmSteps: 16, timedSteps: 32, rounds: 5 },
  { name: "synthetic-14m", source: { synthetic: { hidden: 384, intermediate: 1024, layers: 8, heads: 6, kvHeads: 6 } }, engineMaxTokens: 48, warmSteps: 16, timedSteps: 32, rounds: 5 },
  { name: "tinyllama-1.1b x2 layers", source: { synthetic: { hidden: 2048, intermediate: 5632, layers: 2, heads: 32, kvHeads: 4 } }, engineMaxTokens: 16, warmSteps: 4, timedSteps: 6, rounds: 5 },
  { name: "llama-2-7b x1 layer", source: { synthetic: { hidden: 4096, intermediate: 11008, layers: 1, heads: 32, kvHeads: 32 } }, warmSteps: 2, timedSteps: 4, rounds: 5 },
];

export interface ModelRow {
  model: string;
  parameters: number;
  adapterBytes: number;
  /** A rank-16 all-linear adapter's multiply-adds per token over the base model's (projections and head). */
  loraArithmeticPercent: number;
  /** Bytes of 32 distinct adapters (read once per decode step) over the base model's bytes. */
  thirtyTwoAdaptersBytesPercent: number;
}

export interface ThroughputRow {
  model: string;
  /** "graph": decode steps of the compiled graph alone; "engine": 32 concurrent generate() calls end to end. */
  level: "graph" | "engine";
  variant: string;
  distinctAdapters: number;
  tokensPerSecond: number;
  /** Change against the base model alone (LoRA-free graph), negative = slower. */
  vsBasePercent: number;
}

export interface LoadRow {
  model: string;
  firstLoadMs: number;
  medianColdLoadMs: number;
  /** A switch to an adapter resident in the cache: the cache hit... */
  switchCacheHitMs: number;
  /** ...and the engine's slot lookup when it is already in a LoRA slot... */
  switchSlotHitMs: number;
  /** ...or the copy into a slot when it is not. */
  switchSlotCopyMs: number;
}

export interface AdapterBenchResult {
  rank: number;
  sequences: number;
  models: ModelRow[];
  loads: LoadRow[];
  throughput: ThroughputRow[];
}

interface Setup {
  bench: BenchModel;
  /** This model's scratch folder (model, adapters, graphs). */
  dir: string;
  modelDir: string;
  config: DecoderConfig;
  weights: WeightStore;
  service: AdapterService;
  ids: string[];
}

function findModel(name: string): string {
  const searchPath = process.env.SWITCHYARD_MODEL_PATH ?? "./models:../shared/models";
  for (const entry of searchPath.split(":").filter(Boolean)) {
    const dir = resolve(REPO_ROOT, entry, name);
    if (existsSync(join(dir, "config.json"))) return dir;
  }
  throw new Error(`model ${name} not found on ${searchPath}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeMs(run: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

/** Parameter counts and what a rank-RANK all-linear adapter adds, per token (see ModelRow). */
function modelRow(name: string, config: DecoderConfig, adapterBytes: number): ModelRow {
  let base = config.vocabSize * config.hiddenSize; // the output head
  let lora = 0;
  for (const target of LORA_TARGETS) {
    const { in: inSize, out } = projectionShape(config, target);
    base += config.numLayers * inSize * out;
    lora += config.numLayers * RANK * (inSize + out);
  }
  return {
    model: name,
    parameters: base,
    adapterBytes,
    loraArithmeticPercent: (lora / base) * 100,
    thirtyTwoAdaptersBytesPercent: ((32 * lora) / base) * 100,
  };
}

/** A registry holding 32 random rank-16 all-linear adapters for the model. */
async function setUp(bench: BenchModel, workDir: string): Promise<Setup> {
  const dir = join(workDir, bench.name.replace(/\W+/g, "-"));
  const source = bench.source;
  const modelDir = "shared" in source ? findModel(source.shared) : join(dir, "model");
  if ("synthetic" in source) await writeSyntheticModel(modelDir, source.synthetic, findModel("stories260k"));
  const config = await loadDecoderConfig(modelDir);
  const weights = await openWeights(modelDir);
  const dataDir = join(dir, "data");
  const store = openDatabase(join(dataDir, "db.sqlite"));
  store.db.insert(tenants).values({ id: "t_bench", name: "bench" }).run();
  const service = await createAdapterService({
    db: store.db,
    dataDir,
    base: { id: bench.name, shape: config },
    limits: { maxRank: RANK },
    cacheBudgetBytes: 4 * 2 ** 30,
    maxAdaptersPerBatch: 32,
  });
  const ids: string[] = [];
  for (let k = 0; k < 32; k++) {
    const files = randomPeftAdapter(config, { rank: RANK, alpha: 32, targets: "all-linear", seed: 100 + k, amplitude: 0.02 }).files;
    ids.push((await service.catalog.upload({ tenantId: "t_bench", name: `bench-${k}`, source: files })).id);
  }
  return { bench, dir, modelDir, config, weights, service, ids };
}

async function loadsAndSwitches(s: Setup): Promise<LoadRow> {
  const { cache } = s.service;
  const first = s.ids[0]!;
  const firstLoadMs = await timeMs(() => cache.get(first));
  const coldLoads: number[] = [];
  for (let i = 0; i < LOAD_RUNS; i++) {
    cache.invalidate(first);
    coldLoads.push(await timeMs(() => cache.get(first)));
  }
  const adapters = await Promise.all(s.ids.map(async (id) => requireLora(await cache.get(id))));
  const hits: number[] = [];
  const slotHits: number[] = [];
  const slotCopies: number[] = [];
  const resident = new LoraSlotTable(s.config, 32, RANK);
  resident.slotsFor(adapters);
  const cycling = new LoraSlotTable(s.config, 8, RANK); // 8 slots cycling through 32 adapters: every switch copies
  for (let i = 0; i < SWITCH_RUNS; i++) {
    const adapter = adapters[i % adapters.length]!;
    hits.push(await timeMs(() => cache.get(s.ids[i % s.ids.length]!)));
    slotHits.push(await timeMs(() => resident.slotsFor([adapter])));
    slotCopies.push(await timeMs(() => cycling.slotsFor([adapter])));
  }
  return {
    model: s.bench.name,
    firstLoadMs,
    medianColdLoadMs: median(coldLoads),
    switchCacheHitMs: median(hits),
    switchSlotHitMs: median(slotHits),
    switchSlotCopyMs: median(slotCopies),
  };
}

/** The engine's decode-only graph, with its session settings (one intra-op thread). */
async function decodeRunner(config: DecoderConfig, weights: DecoderWeights, lora: boolean, dir: string): Promise<DecoderRunner> {
  const graph = buildDecoderGraph(config, weights, { ...ENGINE_GRAPHS.decode, lora });
  const files = await writeOnnx(graph, join(dir, lora ? "lora" : "plain"));
  const session = await ort.InferenceSession.create(files.modelPath, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  return new DecoderRunner(session, config, session);
}

const randomPrompts = (vocab: number, length: number) => {
  const random = seededRandom(7);
  return Array.from({ length: SEQUENCES }, () => [1, ...Array.from({ length: length - 1 }, () => 3 + Math.floor(((random() + 1) / 2) * (vocab - 3)))]);
};

/** Tokens/s of `timedSteps` decode steps of SEQUENCES rows, after `warmSteps` untimed ones. */
async function decodeThroughput(runner: DecoderRunner, bench: BenchModel, lora?: LoraFeeds): Promise<number> {
  const tokens = randomPrompts(runner.config.vocabSize, bench.warmSteps + bench.timedSteps);
  const cache = BatchCache.empty(runner.config, SEQUENCES); // each step appends to it
  let elapsed = 0;
  for (let step = 0; step < bench.warmSteps + bench.timedSteps; step++) {
    const started = performance.now();
    await runner.step({ cache, tokens: tokens.map((t) => [t[step]!]), startPositions: tokens.map(() => step), lora });
    if (step >= bench.warmSteps) elapsed += performance.now() - started;
  }
  return (SEQUENCES * bench.timedSteps) / (elapsed / 1000);
}

interface Variant {
  name: string;
  distinct: number;
  run(): Promise<number>;
}

/**
 * Variants run interleaved over `rounds` rounds and each reports its median, so load from other
 * processes on the machine spreads over all variants instead of skewing one.
 */
async function measure(model: string, level: ThroughputRow["level"], rounds: number, variants: Variant[]): Promise<ThroughputRow[]> {
  for (const v of variants) await v.run(); // warm-up
  const samples = variants.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (const [k, v] of variants.entries()) samples[k]!.push(await v.run());
  }
  const base = median(samples[0]!);
  return variants.map((v, k) => {
    const tps = median(samples[k]!);
    return { model, level, variant: v.name, distinctAdapters: v.distinct, tokensPerSecond: tps, vsBasePercent: ((tps - base) / base) * 100 };
  });
}

async function graphThroughput(s: Setup): Promise<ThroughputRow[]> {
  const plain = await decodeRunner(s.config, s.weights, false, join(s.dir, "graphs"));
  const lora = await decodeRunner(s.config, s.weights, true, join(s.dir, "graphs"));
  const adapters = await Promise.all(s.ids.map(async (id) => requireLora(await s.service.cache.get(id))));
  try {
    return await measure(s.bench.name, "graph", s.bench.rounds, [
      { name: "base alone", distinct: 0, run: () => decodeThroughput(plain, s.bench) },
      ...DISTINCT.map((distinct) => {
        const feeds = { slots: Array.from({ length: SEQUENCES }, (_, r) => r % distinct), tensors: buildLoraTensors(s.config, adapters.slice(0, distinct)) };
        return { name: `${distinct} distinct adapters`, distinct, run: () => decodeThroughput(lora, s.bench, feeds) };
      }),
    ]);
  } finally {
    await Promise.all([plain.session.release(), lora.session.release()]);
  }
}

async function engineThroughput(s: Setup, maxTokens: number): Promise<ThroughputRow[]> {
  const engine = await createEngine({
    modelDir: s.modelDir,
    cacheDir: join(s.dir, "compiled"),
    maxBatch: SEQUENCES,
    maxAdaptersPerBatch: 32,
    adapters: s.service.leases,
  });
  const prompts = randomPrompts(s.config.vocabSize, 8);
  const params: SamplingParams = { maxTokens, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] };
  const completion = async (events: AsyncIterable<GenerateEvent>) => {
    let tokens = 0;
    for await (const e of events) if (e.type === "done") tokens = e.completionTokens;
    return tokens;
  };
  const run = async (distinct: number) => {
    const started = performance.now();
    const counts = await Promise.all(
      prompts.map((promptTokens, r) => completion(engine.generate({ promptTokens, params, adapter: distinct ? s.ids[r % distinct] : undefined }))),
    );
    return counts.reduce((a, b) => a + b, 0) / ((performance.now() - started) / 1000);
  };
  try {
    return await measure(s.bench.name, "engine", s.bench.rounds, [
      { name: "base alone", distinct: 0, run: () => run(0) },
      ...DISTINCT.map((distinct) => ({ name: `${distinct} distinct adapters`, distinct, run: () => run(distinct) })),
    ]);
  } finally {
    await engine.close();
  }
}

export async function benchAdapters(): Promise<AdapterBenchResult> {
  const workDir = await mkdtemp(join(tmpdir(), "sy-bench-adapters-"));
  const result: AdapterBenchResult = { rank: RANK, sequences: SEQUENCES, models: [], loads: [], throughput: [] };
  try {
    for (const bench of MODELS) {
      const s = await setUp(bench, workDir);
      try {
        result.loads.push(await loadsAndSwitches(s)); // first, so its first load is cold
        result.models.push(modelRow(bench.name, s.config, (await s.service.cache.get(s.ids[0]!)).bytes));
        result.throughput.push(...(await graphThroughput(s)));
        if (bench.engineMaxTokens) result.throughput.push(...(await engineThroughput(s, bench.engineMaxTokens)));
      } finally {
        s.weights.close();
        await rm(s.dir, { recursive: true, force: true });
      }
    }
    return result;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

function printTable(result: AdapterBenchResult): void {
  const ms = (v: number) => `${v.toFixed(3)} ms`.padStart(12);
  const percent = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(1)}%`.padStart(8);
  const lines = [
    `adapters: rank ${result.rank}, all-linear; ${result.sequences} concurrent sequences`,
    `  ${"model".padEnd(26)} ${"parameters".padStart(12)} ${"adapter".padStart(11)} ${"LoRA MACs".padStart(10)} ${"32 adapters".padStart(12)}`,
    ...result.models.map(
      (m) =>
        `  ${m.model.padEnd(26)} ${String(m.parameters).padStart(12)} ${`${(m.adapterBytes / 2 ** 20).toFixed(2)} MiB`.padStart(11)} ${`${m.loraArithmeticPercent.toFixed(1)}%`.padStart(10)} ${`${m.thirtyTwoAdaptersBytesPercent.toFixed(0)}%`.padStart(12)}`,
    ),
    "  (LoRA MACs: one adapter's multiply-adds per token over the base's; 32 adapters: their bytes over the base's)",
    "",
    `  ${"model".padEnd(26)} ${"first load".padStart(12)} ${"cold load".padStart(12)} ${"cache hit".padStart(12)} ${"slot hit".padStart(12)} ${"slot copy".padStart(12)}`,
    ...result.loads.map(
      (l) => `  ${l.model.padEnd(26)} ${ms(l.firstLoadMs)} ${ms(l.medianColdLoadMs)} ${ms(l.switchCacheHitMs)} ${ms(l.switchSlotHitMs)} ${ms(l.switchSlotCopyMs)}`,
    ),
    "",
    `  ${"model".padEnd(26)} ${"level".padEnd(7)} ${"variant".padEnd(20)} ${"tokens/s".padStart(10)} ${"vs base".padStart(8)}`,
    ...result.throughput.map(
      (r) => `  ${r.model.padEnd(26)} ${r.level.padEnd(7)} ${r.variant.padEnd(20)} ${r.tokensPerSecond.toFixed(0).padStart(10)} ${percent(r.vsBasePercent)}`,
    ),
  ];
  console.log(lines.join("\n"));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchAdapters();
  printTable(result);
  const out = join(REPO_ROOT, "bench-results");
  await mkdir(out, { recursive: true });
  await writeFile(join(out, "adapters.json"), `${JSON.stringify({ ...result, date: new Date().toISOString(), node: process.version }, null, 2)}\n`);
  console.log("\nprompt tuning and LoRA mixed, 32 sequences on stories260k (bench/adapters-prompt-tuning.ts):");
  report("adapters-prompt-tuning", await promptTuningServing(), PROMPT_TUNING_SERVING);
}
