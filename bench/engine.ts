/**
 * Engine benchmark on stories260k: prefill tokens/s, batch-1 decode tokens/s, time to first
 * token, aggregate decode tokens/s at 8 and 32 concurrent sequences, resident memory.
 * Run: `npx tsx bench/engine.ts` (or `npm run bench -- engine`); writes bench-results/engine.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { GenerateEvent, SamplingParams } from "../edge/ports.ts";
import { createEngine, type Engine } from "../services/inference/engine.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";

export interface Row {
  metric: string;
  value: number;
  unit: string;
  /** The issue's goal for this metric, if it has one. */
  goal?: number;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** llama2.c's single-threaded C decoding this model on this machine class. */
const LLAMA2C_TOKENS_PER_S = 5500;

function params(maxTokens: number, seed: number): SamplingParams {
  return { maxTokens, temperature: 0.8, topP: 0.95, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, seed, stop: [] };
}

async function finalEvent(events: AsyncIterable<GenerateEvent>): Promise<Extract<GenerateEvent, { type: "done" }>> {
  for await (const e of events) if (e.type === "done") return e;
  throw new Error("generation ended without a done event");
}

/** Prompts that keep the model busy: `n` tokens of story text (the tokenizer's own output). */
function promptOf(engine: Engine, tokens: number): number[] {
  const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. ";
  const ids = engine.tokenize(text.repeat(Math.ceil(tokens / 20)));
  return ids.slice(0, tokens);
}

async function aggregateDecode(engine: Engine, sequences: number, maxTokens: number): Promise<number> {
  const start = performance.now();
  const done = await Promise.all(
    Array.from({ length: sequences }, (_, i) => finalEvent(engine.generate({ promptTokens: promptOf(engine, 8 + (i % 8)), params: params(maxTokens, i + 1) }))),
  );
  const seconds = (performance.now() - start) / 1000;
  return done.reduce((sum, d) => sum + d.completionTokens, 0) / seconds;
}

export async function benchEngine(): Promise<Row[]> {
  const modelDir = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, ROOT));
  const cacheDir = await mkdtemp(join(tmpdir(), "sy-bench-engine-"));
  const engine = await createEngine({ modelDir, cacheDir, maxBatch: 32, prefillChunk: 256 });
  try {
    await finalEvent(engine.generate({ promptTokens: [1], params: params(64, 0) })); // warm-up

    const prefillPrompt = promptOf(engine, 256);
    const prefill = await finalEvent(engine.generate({ promptTokens: prefillPrompt, params: params(1, 1) }));
    const shortPrompt = await finalEvent(engine.generate({ promptTokens: promptOf(engine, 16), params: params(1, 2) }));

    const decodeTokens = 256;
    const single = await finalEvent(engine.generate({ promptTokens: [1], params: { ...params(decodeTokens, 3), temperature: 0 } }));
    const decodeSeconds = (single.timings.totalMs - single.timings.firstTokenMs) / 1000;

    const at8 = await aggregateDecode(engine, 8, 200);
    const at32 = await aggregateDecode(engine, 32, 200);
    return [
      { metric: "prefill (256-token prompt)", value: prefillPrompt.length / (prefill.timings.firstTokenMs / 1000), unit: "tokens/s" },
      { metric: "time to first token (16-token prompt)", value: shortPrompt.timings.firstTokenMs, unit: "ms" },
      { metric: "decode, batch 1", value: (single.completionTokens - 1) / decodeSeconds, unit: "tokens/s", goal: LLAMA2C_TOKENS_PER_S },
      { metric: "decode, 8 concurrent sequences", value: at8, unit: "tokens/s" },
      { metric: "decode, 32 concurrent sequences", value: at32, unit: "tokens/s", goal: 6 * LLAMA2C_TOKENS_PER_S },
      { metric: "resident memory (RSS)", value: process.memoryUsage().rss / 2 ** 20, unit: "MiB" },
    ];
  } finally {
    await engine.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
}

function printTable(rows: Row[]): void {
  const width = Math.max(...rows.map((r) => r.metric.length));
  for (const r of rows) {
    const goal = r.goal === undefined ? "" : `  (goal ≥ ${r.goal}: ${r.value >= r.goal ? "met" : `${((r.value / r.goal) * 100).toFixed(0)}% of it`})`;
    console.log(`${r.metric.padEnd(width)}  ${r.value.toFixed(r.value < 100 ? 2 : 0).padStart(9)} ${r.unit}${goal}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const rows = await benchEngine();
  printTable(rows);
  await mkdir(join(ROOT, "bench-results"), { recursive: true });
  await writeFile(join(ROOT, "bench-results", "engine.json"), JSON.stringify({ section: "engine", model: "stories260k", rows }, null, 2) + "\n");
}
