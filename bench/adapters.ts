/**
 * Adapter benchmark: cold load of a rank-16 all-linear adapter from disk, switching between
 * resident adapters, and aggregate decode throughput of 32 concurrent sequences with 1, 8 and 32
 * distinct adapters against the same batch on the base model alone, on stories260k and on a
 * random ~12M-parameter Llama (where the matmuls, not per-op overhead, dominate). Throughput is
 * measured twice: decode steps of the compiled graph alone, and 32 generate() calls through the
 * engine end to end (continuous batching, prefill, sampling).
 *
 *   npx tsx bench/adapters.ts        (prints a table, writes bench-results/adapters.json)
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as ort from "onnxruntime-node";
import type { GenerateEvent, SamplingParams } from "../edge/ports.ts";
import { createAdapterService, type AdapterService } from "../services/adapters/index.ts";
import { LoraSlotTable } from "../services/adapters/slot-table.ts";
import { randomPeftAdapter, seededRandom } from "../services/adapters/synthetic.ts";
import { DecoderRunner } from "../services/inference/decoder-runner.ts";
import { createEngine } from "../services/inference/engine.ts";
import { BatchCache } from "../services/inference/kv-cache.ts";
import { buildLoraTensors } from "../services/inference/lora-feeds.ts";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { buildDecoderGraph, type DecoderWeights } from "../services/model/decoder.ts";
import { writeOnnx } from "../services/model/graph/onnx.ts";
import { openWeights, writeSafetensors, type TensorToWrite, type WeightStore } from "../services/model/safetensors.ts";
import { openDatabase } from "../services/store/db.ts";
import { tenants } from "../services/store/schema.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SEQUENCES = 32;
const RANK = 16;
const PROMPT_TOKENS = 16;
const DECODE_STEPS = 32;
const ENGINE_MAX_TOKENS = 48;
const ROUNDS = 5;
const LOAD_RUNS = 20;
const SWITCH_RUNS = 200;
const DISTINCT = [1, 8, 32];

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
  adapterBytes: number;
  firstLoadMs: number;
  medianColdLoadMs: number;
  /** A switch to a resident adapter: the cache hit, plus new stacked feeds for a batch of it alone. */
  switchCacheHitMs: number;
  switchFeedsOneAdapterMs: number;
  /** Rebuilding the stacked feeds of a batch holding 32 distinct adapters. */
  feedsThirtyTwoAdaptersMs: number;
  /** A switch with persistent slots (services/adapters/slot-table.ts): copy one resident adapter into a slot. */
  switchSlotCopyMs: number;
}

export interface AdapterBenchResult {
  rank: number;
  sequences: number;
  loads: LoadRow[];
  throughput: ThroughputRow[];
}

interface Setup {
  model: string;
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

/** A random Llama of about 12M parameters in a model folder, with stories260k's tokenizer (vocab 512). */
async function writeSyntheticModel(dir: string, tokenizerFrom: string): Promise<void> {
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 384,
    intermediate_size: 1024,
    num_hidden_layers: 8,
    num_attention_heads: 6,
    num_key_value_heads: 6,
    vocab_size: 512,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const random = seededRandom(3);
  const tensors: Record<string, TensorToWrite> = {};
  const add = (name: string, shape: number[], scale: number, offset = 0) =>
    (tensors[name] = { dtype: "F32", shape, data: Float32Array.from({ length: shape[0]! * (shape[1] ?? 1) }, () => offset + random() * scale) });
  const h = config.hidden_size;
  const m = config.intermediate_size;
  add("model.embed_tokens.weight", [config.vocab_size, h], 0.5);
  add("model.norm.weight", [h], 0.1, 1);
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, [h], 0.1, 1);
    add(`${p}post_attention_layernorm.weight`, [h], 0.1, 1);
    for (const t of ["q_proj", "k_proj", "v_proj", "o_proj"]) add(`${p}self_attn.${t}.weight`, [h, h], 0.05);
    add(`${p}mlp.gate_proj.weight`, [m, h], 0.05);
    add(`${p}mlp.up_proj.weight`, [m, h], 0.05);
    add(`${p}mlp.down_proj.weight`, [h, m], 0.05);
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), JSON.stringify(config));
  await writeFile(join(dir, "model.safetensors"), writeSafetensors(tensors));
  for (const file of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(tokenizerFrom, file), join(dir, file));
}

/** A registry holding 32 random rank-16 all-linear adapters for the model. */
async function setUp(model: string, modelDir: string, workDir: string): Promise<Setup> {
  const config = await loadDecoderConfig(modelDir);
  const weights = await openWeights(modelDir);
  const dataDir = join(workDir, model);
  const store = openDatabase(join(dataDir, "db.sqlite"));
  store.db.insert(tenants).values({ id: "t_bench", name: "bench" }).run();
  const service = await createAdapterService({
    db: store.db,
    dataDir,
    base: { id: model, shape: config },
    limits: { maxRank: RANK },
    cacheBudgetBytes: 4 * 2 ** 30,
    maxAdaptersPerBatch: 32,
  });
  const ids: string[] = [];
  for (let k = 0; k < 32; k++) {
    const files = randomPeftAdapter(config, { rank: RANK, alpha: 32, targets: "all-linear", seed: 100 + k, amplitude: 0.02 }).files;
    ids.push((await service.registry.create({ tenantId: "t_bench", name: `bench-${k}`, files })).id);
  }
  return { model, modelDir, config, weights, service, ids };
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
  const adapters = await Promise.all(s.ids.map((id) => cache.get(id)));
  const hits: number[] = [];
  const feedsOne: number[] = [];
  const feedsAll: number[] = [];
  const slotCopies: number[] = [];
  const table = new LoraSlotTable(s.config, 8, RANK); // 8 slots cycling through 32 adapters: every switch copies
  for (let i = 0; i < SWITCH_RUNS; i++) {
    const adapter = adapters[i % adapters.length]!;
    hits.push(await timeMs(() => cache.get(s.ids[i % s.ids.length]!)));
    feedsOne.push(await timeMs(() => buildLoraTensors(s.config, [adapter])));
    slotCopies.push(await timeMs(() => table.slotsFor([adapter])));
    if (i % 20 === 0) feedsAll.push(await timeMs(() => buildLoraTensors(s.config, adapters)));
  }
  return {
    model: s.model,
    adapterBytes: adapters[0]!.bytes,
    firstLoadMs,
    medianColdLoadMs: median(coldLoads),
    switchCacheHitMs: median(hits),
    switchFeedsOneAdapterMs: median(feedsOne),
    feedsThirtyTwoAdaptersMs: median(feedsAll),
    switchSlotCopyMs: median(slotCopies),
  };
}

/** The same graph options and session settings as the engine (fused ops, one intra-op thread). */
async function compile(config: DecoderConfig, weights: DecoderWeights, lora: boolean, dir: string): Promise<DecoderRunner> {
  const files = await writeOnnx(buildDecoderGraph(config, weights, { lora, fused: true }), join(dir, lora ? "lora" : "plain"));
  const session = await ort.InferenceSession.create(files.modelPath, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  return new DecoderRunner(session, config);
}

const randomPrompts = (vocab: number, length: number) => {
  const random = seededRandom(7);
  return Array.from({ length: SEQUENCES }, () => [1, ...Array.from({ length: length - 1 }, () => 3 + Math.floor(((random() + 1) / 2) * (vocab - 3)))]);
};

/** Tokens/s of DECODE_STEPS decode steps (fixed next tokens) for SEQUENCES rows after a prefill. */
async function decodeThroughput(runner: DecoderRunner, lora?: { slots: number[]; tensors: Record<string, ort.Tensor> }): Promise<number> {
  const prompts = randomPrompts(runner.config.vocabSize, PROMPT_TOKENS);
  const cache = BatchCache.empty(runner.config, SEQUENCES); // each step appends to it
  await runner.step({ cache, tokens: prompts, startPositions: prompts.map(() => 0), lora });
  let elapsed = 0;
  for (let step = 0; step < DECODE_STEPS; step++) {
    const tokens = prompts.map((p) => [p[step % PROMPT_TOKENS]!]);
    const started = performance.now();
    await runner.step({ cache, tokens, startPositions: prompts.map(() => PROMPT_TOKENS + step), lora });
    elapsed += performance.now() - started;
  }
  return (SEQUENCES * DECODE_STEPS) / (elapsed / 1000);
}

interface Variant {
  name: string;
  distinct: number;
  run(): Promise<number>;
}

/**
 * Variants run interleaved over ROUNDS rounds and each reports its median, so load from other
 * processes on the machine spreads over all variants instead of skewing one.
 */
async function measure(model: string, level: ThroughputRow["level"], variants: Variant[]): Promise<ThroughputRow[]> {
  for (const v of variants) await v.run(); // warm-up
  const samples = variants.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, v] of variants.entries()) samples[k]!.push(await v.run());
  }
  const base = median(samples[0]!);
  return variants.map((v, k) => {
    const tps = median(samples[k]!);
    return { model, level, variant: v.name, distinctAdapters: v.distinct, tokensPerSecond: tps, vsBasePercent: ((tps - base) / base) * 100 };
  });
}

async function graphThroughput(s: Setup, workDir: string): Promise<ThroughputRow[]> {
  const dir = join(workDir, `${s.model}-graphs`);
  const plain = await compile(s.config, s.weights, false, dir);
  const lora = await compile(s.config, s.weights, true, dir);
  const adapters = await Promise.all(s.ids.map((id) => s.service.cache.get(id)));
  const noAdapter = { slots: Array<number>(SEQUENCES).fill(0), tensors: buildLoraTensors(s.config, []) };
  return measure(s.model, "graph", [
    { name: "base alone, LoRA-free graph", distinct: 0, run: () => decodeThroughput(plain) },
    { name: "base alone, LoRA graph", distinct: 0, run: () => decodeThroughput(lora, noAdapter) },
    ...DISTINCT.map((distinct) => {
      const feeds = { slots: Array.from({ length: SEQUENCES }, (_, r) => 1 + (r % distinct)), tensors: buildLoraTensors(s.config, adapters.slice(0, distinct)) };
      return { name: `${distinct} distinct adapters`, distinct, run: () => decodeThroughput(lora, feeds) };
    }),
  ]);
}

async function engineThroughput(s: Setup, workDir: string): Promise<ThroughputRow[]> {
  const engine = await createEngine({
    modelDir: s.modelDir,
    cacheDir: join(workDir, `${s.model}-compiled`),
    maxBatch: SEQUENCES,
    maxAdaptersPerBatch: 32,
    resolveAdapter: s.service.resolveAdapter,
  });
  const prompts = randomPrompts(s.config.vocabSize, 8);
  const params: SamplingParams = { maxTokens: ENGINE_MAX_TOKENS, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] };
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
    return await measure(s.model, "engine", [
      { name: "base alone", distinct: 0, run: () => run(0) },
      ...DISTINCT.map((distinct) => ({ name: `${distinct} distinct adapters`, distinct, run: () => run(distinct) })),
    ]);
  } finally {
    await engine.close();
  }
}

export async function benchAdapters(): Promise<AdapterBenchResult> {
  const workDir = await mkdtemp(join(tmpdir(), "sy-bench-adapters-"));
  const setups: Setup[] = [];
  try {
    const stories = findModel("stories260k");
    const synthetic = join(workDir, "synthetic-12m-model");
    await writeSyntheticModel(synthetic, stories);
    setups.push(await setUp("stories260k", stories, workDir), await setUp("synthetic-12m", synthetic, workDir));
    const loads: LoadRow[] = [];
    const throughput: ThroughputRow[] = [];
    for (const s of setups) {
      loads.push(await loadsAndSwitches(s));
      throughput.push(...(await graphThroughput(s, workDir)), ...(await engineThroughput(s, workDir)));
    }
    return { rank: RANK, sequences: SEQUENCES, loads, throughput };
  } finally {
    for (const s of setups) s.weights.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

function printTable(result: AdapterBenchResult): void {
  const ms = (v: number) => `${v.toFixed(3)} ms`.padStart(12);
  const lines = [
    `adapters: rank ${result.rank}, all-linear; ${result.sequences} concurrent sequences`,
    `  ${"model".padEnd(15)} ${"bytes".padStart(9)} ${"first load".padStart(12)} ${"cold load".padStart(12)} ${"cache hit".padStart(12)} ${"feeds 1".padStart(12)} ${"feeds 32".padStart(12)} ${"slot copy".padStart(12)}`,
    ...result.loads.map(
      (l) =>
        `  ${l.model.padEnd(15)} ${String(l.adapterBytes).padStart(9)} ${ms(l.firstLoadMs)} ${ms(l.medianColdLoadMs)} ${ms(l.switchCacheHitMs)} ${ms(l.switchFeedsOneAdapterMs)} ${ms(l.feedsThirtyTwoAdaptersMs)} ${ms(l.switchSlotCopyMs)}`,
    ),
    "",
    `  ${"model".padEnd(15)} ${"level".padEnd(7)} ${"variant".padEnd(28)} ${"tokens/s".padStart(10)} ${"vs base".padStart(8)}`,
    ...result.throughput.map(
      (r) =>
        `  ${r.model.padEnd(15)} ${r.level.padEnd(7)} ${r.variant.padEnd(28)} ${r.tokensPerSecond.toFixed(0).padStart(10)} ${`${r.vsBasePercent >= 0 ? "+" : ""}${r.vsBasePercent.toFixed(1)}%`.padStart(8)}`,
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
}
