/**
 * What onnxruntime itself allows on this machine at one thread: the ceilings the engine's speed goals run into
 * (int4 batch-1 decode ≥ 3× F32, 32 sequences ≥ 3× llama.cpp, stories260k ≥ 5,300 tokens/s).
 * - Projections: the TinyLlama-shaped gate/up product (2048 → 11264) in each format, built and run the way the
 *   engine builds and runs it (services/model/llama/projection.ts, `engineSessionOptions`), at 1 and 32 rows; and
 *   the decode rate of the benchmark's 4-layer model if every one of its weights ran at that speed and nothing
 *   else cost anything: an upper bound for the engine at that format and batch.
 * - Dispatch: one `session.run` with the stories260k decode graph's inputs and outputs and no work, and one more
 *   trivial node; with the decode graph's node count after onnxruntime's own optimizations they bound its batch-1 rate.
 * Run: `npm run bench -- engine ceilings`; writes bench-results/engine-ceilings.json.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { ModelProtoSchema } from "onnx-buf";
import { compiledSession, engineSessionOptions, engineVariants, int8WeightsForCpu, type WeightMemory } from "../services/inference/engine.ts";
import { compileDecoders } from "../services/model/compile-cache.ts";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { attr, Graph, type Value } from "../services/model/graph/ir.ts";
import { emitOnnx } from "../services/model/graph/onnx.ts";
import { quantizedMatMul } from "../services/model/llama/projection.ts";
import type { DecoderWeights } from "../services/model/llama/weights.ts";
import { quantize, type WeightFormat } from "../services/model/quantize.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { openWeights } from "../services/model/safetensors.ts";
import { BENCH_ROOT, report } from "./report.ts";
import { tinyLlamaShape, type SyntheticShape } from "./synthetic-model.ts";

const SHAPE = tinyLlamaShape(4);
const K = SHAPE.hidden;
const N = 2 * SHAPE.intermediate;
/** The goal for stories260k, batch 1 (llama2.c's run.c at -O2 on the machine the goal was set on). */
const STORIES_GOAL = 5300;

/** Every weight a decode step multiplies: the projections of each layer and the output head. */
function multipliedWeights(s: SyntheticShape): number {
  const kv = (s.kvHeads * s.hidden) / s.heads;
  const layer = s.hidden * (s.hidden + 2 * kv) + s.hidden * s.hidden + s.hidden * 2 * s.intermediate + s.intermediate * s.hidden;
  return s.layers * layer + (s.vocab ?? 512) * s.hidden;
}

interface Projection {
  format: WeightFormat;
  memory: WeightMemory;
}

const PROJECTIONS: Projection[] = [
  { format: "f32", memory: "mapped" },
  { format: "f32", memory: "packed" },
  { format: "int8", memory: "packed" },
  { format: "int4", memory: "packed" },
];

/** The product's matrix is given directly; nothing is read by name. */
const NO_WEIGHTS: DecoderWeights = {
  has: () => false,
  getF32: (name) => {
    throw new Error(`no weight ${name}`);
  },
};

async function projectionSession({ format, memory }: Projection, w: Float32Array): Promise<ort.InferenceSession> {
  const g = new Graph("projection");
  const x = g.input("x", "float32", ["rows", K]);
  const y =
    format === "f32"
      ? g.op1("FusedMatMul", [x, g.initializer("w", "float32", [N, K], w)], { domain: "com.microsoft", attrs: { transB: attr.int(1) } })
      : quantizedMatMul(g, x, "w", NO_WEIGHTS, () => quantize(w, N, K, format), int8WeightsForCpu());
  g.output(y, "y");
  return ort.InferenceSession.create(emitOnnx(g).model, engineSessionOptions(1, memory));
}

/** The least time of `reps` runs (ms): on a shared machine the least disturbed. */
async function fastestRun(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, reps: number): Promise<number> {
  await session.run(feeds);
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    await session.run(feeds);
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

/** Mean time of one run over `reps` back-to-back runs (µs): for runs too short to time one by one. */
async function meanRunMicros(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, reps: number): Promise<number> {
  for (let i = 0; i < reps / 10; i++) await session.run(feeds);
  const start = performance.now();
  for (let i = 0; i < reps; i++) await session.run(feeds);
  return ((performance.now() - start) / reps) * 1000;
}

async function projectionRows(): Promise<CeilingRow[]> {
  const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.618) * 0.05);
  const weightsPerToken = multipliedWeights(SHAPE);
  const rows: CeilingRow[] = [];
  for (const projection of PROJECTIONS) {
    const session = await projectionSession(projection, w);
    for (const batch of [1, 32]) {
      const x = new ort.Tensor("float32", Float32Array.from({ length: batch * K }, (_, i) => Math.cos(i)), [batch, K]);
      const ms = await fastestRun(session, { x }, batch === 1 ? 30 : 8);
      const ceiling = (batch * 1000) / ms / (weightsPerToken / (N * K));
      rows.push({ measure: `${K}→${N} product, ${projection.format} ${projection.memory}, ${batch} row${batch > 1 ? "s" : ""}`, "time (µs)": ms * 1000, "ceiling (tokens/s)": ceiling, model: "tinyllama-4" });
    }
    await session.release();
  }
  return rows;
}

/** A graph of `inputs` float inputs [1, 4, past, 8] and two outputs, with `chain` Add nodes between the first input and an output. */
function dispatchGraph(inputs: number, chain: number): Uint8Array {
  const g = new Graph("dispatch");
  const xs = Array.from({ length: inputs }, (_, i) => g.input(`x${i}`, "float32", [1, 4, "past", 8]));
  let y: Value = xs[0]!;
  for (let i = 0; i < chain; i++) y = g.add(y, g.constFloat([1], []));
  g.output(y, "y");
  g.output(g.op1("Identity", [xs[1] ?? xs[0]!]), "z");
  return emitOnnx(g).model;
}

async function dispatchMicros(inputs: number, chain: number): Promise<number> {
  const session = await ort.InferenceSession.create(dispatchGraph(inputs, chain), engineSessionOptions(1));
  const feeds = Object.fromEntries(Array.from({ length: inputs }, (_, i) => [`x${i}`, new ort.Tensor("float32", new Float32Array(4 * 64 * 8), [1, 4, 64, 8])]));
  const micros = await meanRunMicros(session, feeds, 3000);
  await session.release();
  return micros;
}

/** Nodes of the engine's stories260k decode graph once onnxruntime has optimized it. */
async function decodeGraphNodes(dir: string, config: DecoderConfig): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), "ceilings-"));
  try {
    const weights = await openWeights(dir);
    const compiled = await compileDecoders({ config, weights, cacheDir: work }, { decode: engineVariants().decode }).finally(() => weights.close());
    const optimized = join(work, "optimized.onnx");
    const session = await compiledSession(compiled.graphs.decode, { ...engineSessionOptions(1), optimizedModelFilePath: optimized });
    await session.release();
    return fromBinary(ModelProtoSchema, await readFile(optimized)).graph?.node.length ?? NaN;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function dispatchRows(): Promise<CeilingRow[]> {
  const dir = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, BENCH_ROOT));
  const config = await loadDecoderConfig(dir);
  const inputs = 3 + 2 * config.numLayers; // ids, positions, mask, each layer's past keys and values
  const floor = await dispatchMicros(inputs, 1);
  const perNode = ((await dispatchMicros(inputs, 101)) - floor) / 100;
  const nodes = await decodeGraphNodes(dir, config);
  const ceiling = 1e6 / (floor + nodes * perNode);
  return [
    { measure: `session.run with ${inputs} inputs, 2 outputs, one trivial node`, "time (µs)": floor },
    { measure: "one more trivial node (an Add of 2,048 floats)", "time (µs)": perNode },
    { measure: `decode graph: ${nodes} nodes after onnxruntime's optimizations, batch 1`, "time (µs)": floor + nodes * perNode, "ceiling (tokens/s)": ceiling, model: "stories260k", goal: STORIES_GOAL },
  ];
}

export type CeilingRow = Record<string, string | number>;

/** The projections' rows, then the dispatch rows (see the header). */
export async function benchCeilings(): Promise<CeilingRow[]> {
  return [...(await projectionRows()), ...(await dispatchRows())];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  report("engine-ceilings", await benchCeilings(), { shape: SHAPE, int8Weights: int8WeightsForCpu() });
}
