/**
 * One side of the engine benchmark's A/B run (bench/engine-vs-llama-cpp.ts), alone in its process so its
 * memory is its own: loads one model into the engine or into llama.cpp, measures, prints one JSON line.
 * Memory is PSS split by bench/resident.ts (RSS double counts the engine's weight file, which each
 * of its sessions maps), peak PSS sampled through the run.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { GenerateEvent, SamplingParams } from "../ports/index.ts";
import type { Engine, WeightMemory } from "../services/inference/engine.ts";
import type { WeightFormat } from "../services/model/quantize.ts";
import { residentSplit, samplePeakPss } from "./resident.ts";

export interface PeerJob {
  runner: "engine" | "llama.cpp";
  /** A Hugging Face folder for the engine, a GGUF file for llama.cpp. */
  path: string;
  threads: number;
  /** The engine's base weights format (SWITCHYARD_WEIGHTS); llama.cpp's is its GGUF file's. */
  weights?: WeightFormat;
  /** The engine's compile cache. */
  cacheDir: string;
  /** The engine's weight memory mode (default its own). */
  weightMemory?: WeightMemory;
  /** 256 prompt token ids (the same for both sides). */
  prompt: number[];
  /** Tokens decoded by the batch-1 run, and by each of the concurrent sequences. */
  decodeTokens: number;
  sequenceTokens: number;
}

export interface PeerResult {
  loadMs: number;
  prefill256: number;
  decode1: number;
  decode8: number;
  decode32: number;
  /** maxRSS: counts a weight file mapped by several sessions once per mapping (see bench/resident.ts). */
  peakRssMiB: number;
  /** Highest PSS sampled during the run: the process's true share of memory. */
  peakPssMiB: number;
  /** After the measurements, before closing: PSS in all, of the weight file's mappings, anonymous, the rest. */
  pssMiB: number;
  weightsMiB: number;
  anonymousMiB: number;
  otherMiB: number;
  /** Size of the weight file on disk (the engine's compiled weights.bin, llama.cpp's GGUF). */
  weightFileMiB: number;
}

type Measured = Omit<PeerResult, "peakRssMiB" | "peakPssMiB" | "weightFileMiB">;

/** Weight files as the two engines map them (the engine its compiled weights.bin, or the source safetensors in place). */
const WEIGHT_FILES = /(weights\.bin|\.gguf|\.safetensors)$/;

/** The prompt of concurrent sequence `i`: a few tokens, different lengths, as the engine bench uses. */
const shortPrompt = (job: PeerJob, i: number) => job.prompt.slice(0, 4 + (i % 8));

function greedy(maxTokens: number): SamplingParams {
  return { maxTokens, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, seed: 1, stop: [] };
}

async function done(events: AsyncIterable<GenerateEvent>): Promise<Extract<GenerateEvent, { type: "done" }>> {
  for await (const e of events) if (e.type === "done") return e;
  throw new Error("generation ended without a done event");
}

async function engineConcurrent(engine: Engine, job: PeerJob, sequences: number): Promise<number> {
  const start = performance.now();
  const all = await Promise.all(
    Array.from({ length: sequences }, (_, i) => done(engine.generate({ promptTokens: shortPrompt(job, i), params: greedy(job.sequenceTokens) }))),
  );
  return all.reduce((sum, d) => sum + d.completionTokens, 0) / ((performance.now() - start) / 1000);
}

function resident(): Pick<PeerResult, "pssMiB" | "weightsMiB" | "anonymousMiB" | "otherMiB"> {
  const { pssMiB, weightsMiB, anonymousMiB, otherMiB } = residentSplit(WEIGHT_FILES);
  return { pssMiB, weightsMiB, anonymousMiB, otherMiB };
}

async function measureEngine(job: PeerJob): Promise<Measured> {
  // Each side loads only its own runtime, so neither's memory counts the other's libraries.
  const { createEngine } = await import("../services/inference/engine.ts");
  const start = performance.now();
  const engine = await createEngine({ modelDir: job.path, cacheDir: job.cacheDir, maxBatch: 32, prefillChunk: 256, intraOpThreads: job.threads, weightMemory: job.weightMemory, weights: job.weights,
    // The background content check (a one-off hash of the source weights) would share the cores with the measurements.
    verifyWeights: false,
  });
  const loadMs = performance.now() - start;
  try {
    await done(engine.generate({ promptTokens: [1], params: greedy(4) })); // warm-up
    const prefill = await done(engine.generate({ promptTokens: job.prompt, params: greedy(1) }));
    const decode = await done(engine.generate({ promptTokens: [1], params: greedy(job.decodeTokens) }));
    return {
      loadMs,
      prefill256: job.prompt.length / (prefill.timings.firstTokenMs / 1000),
      decode1: (decode.completionTokens - 1) / ((decode.timings.totalMs - decode.timings.firstTokenMs) / 1000),
      decode8: await engineConcurrent(engine, job, 8),
      decode32: await engineConcurrent(engine, job, 32),
      ...resident(),
    };
  } finally {
    await engine.close();
  }
}

/** Greedy tokens of one sequence; the first token's and the last token's times. */
async function llamaGreedy(sequence: LlamaContextSequence, prompt: number[], maxTokens: number): Promise<{ tokens: number; firstAt: number; lastAt: number }> {
  let tokens = 0;
  let firstAt = 0;
  let lastAt = 0;
  for await (const _ of sequence.evaluate(prompt as Token[], { temperature: 0 })) {
    lastAt = performance.now();
    if (++tokens === 1) firstAt = lastAt;
    if (tokens === maxTokens) break;
  }
  return { tokens, firstAt, lastAt };
}

async function measureLlamaCpp(job: PeerJob): Promise<Measured> {
  const { cpuLlama } = await import("./llama-cpp.ts");
  const llama = await cpuLlama();
  const start = performance.now();
  const model = await llama.loadModel({ modelPath: job.path, gpuLayers: 0 });
  const single = await model.createContext({ contextSize: 512, batchSize: 256, threads: job.threads });
  const loadMs = performance.now() - start;
  try {
    const sequence = single.getSequence();
    await llamaGreedy(sequence, [1], 4); // warm-up
    await sequence.clearHistory();
    const prefillStart = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(job.prompt as Token[]);
    const prefill256 = job.prompt.length / ((performance.now() - prefillStart) / 1000);
    await sequence.clearHistory();
    const decode = await llamaGreedy(sequence, [1], job.decodeTokens);
    await single.dispose();

    // One context per batch size, its KV cache sized to it; node-llama-cpp batches the sequences' steps together.
    const concurrent = async (n: number) => {
      const batched = await model.createContext({ contextSize: job.sequenceTokens + 16, sequences: n, batchSize: 512, threads: job.threads });
      const sequences = Array.from({ length: n }, () => batched.getSequence());
      const begin = performance.now();
      const runs = await Promise.all(sequences.map((s, i) => llamaGreedy(s, shortPrompt(job, i), job.sequenceTokens)));
      const rate = runs.reduce((sum, r) => sum + r.tokens, 0) / ((performance.now() - begin) / 1000);
      await batched.dispose();
      return rate;
    };
    const decode8 = await concurrent(8);
    const decode32 = await concurrent(32);
    return { loadMs, prefill256, decode1: (decode.tokens - 1) / ((decode.lastAt - decode.firstAt) / 1000), decode8, decode32, ...resident() };
  } finally {
    await model.dispose();
  }
}

/** The weight file this run mapped: the GGUF, or the engine's one compiled weights.bin for this model, or its source safetensors when served in place. */
async function weightFileMiB(job: PeerJob): Promise<number> {
  if (job.runner === "llama.cpp") return (await stat(job.path)).size / 2 ** 20;
  const compiled = (await readdir(job.cacheDir, { recursive: true })).filter((f) => f.endsWith("weights.bin"));
  if (compiled.length > 1) throw new Error(`expected at most one compiled weight file in ${job.cacheDir}, found ${compiled.length}`);
  const files = compiled.length ? [join(job.cacheDir, compiled[0]!)] : (await readdir(job.path)).filter((f) => f.endsWith(".safetensors")).map((f) => join(job.path, f));
  const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
  return sizes.reduce((a, b) => a + b, 0) / 2 ** 20;
}

const job = JSON.parse(process.argv[2] ?? "{}") as PeerJob;
const peak = samplePeakPss();
const measured = job.runner === "engine" ? await measureEngine(job) : await measureLlamaCpp(job);
const result: PeerResult = { ...measured, peakRssMiB: process.resourceUsage().maxRSS / 1024, peakPssMiB: peak.stop(), weightFileMiB: await weightFileMiB(job) };
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
