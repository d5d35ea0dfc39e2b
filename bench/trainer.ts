/**
 * Trainer benchmark.
 *   1. Training tokens/s of full optimizer steps (forward + backward in one onnxruntime session,
 *      gradient pull-back, clipping, AdamW) after warmup steps, LoRA r=8 on every linear layer, and
 *      peak RSS beside the step's memory estimate (trainer/memory.ts), on
 *      - stories260k at sequence length 256, batch 8 (one micro-batch), 1 and 2 threads;
 *      - a random model with TinyLlama-1.1B's layer shapes and vocabulary, 2 layers (bench/synthetic-model.ts),
 *        at 256 × 8 too (BENCH_TRAINER_TINYLLAMA_SEQ / _BATCH shorten it on a slow machine; the table says so).
 *      - DPO on stories260k at the same sizes (bench/trainer-dpo.ts): 4 pairs = 8 rows per run, pairs/s and tokens/s.
 *      - prompt tuning on stories260k at the same sizes plus 8 virtual tokens a row (bench/trainer-prompt-tuning.ts;
 *        `npm run bench -- trainer prompt-tuning` runs it alone).
 *      Peak RSS is the process's high-water mark so far: each row includes the rows before it.
 *   1b. Sequence packing (trainer/packing.ts): counted tokens/s of stories260k steps over 8 mixed-length
 *      examples with packing off and on, interleaved (bench-results/trainer-packing.json;
 *      BENCH_TRAINER_ONLY=packing runs this part alone).
 *   2. The edge's chat latency with and without a training job: the platform in process (hosts/node/server.ts,
 *      its trainer a supervised child process as `switchyard start` runs it), p50/p99 of sequential chats
 *      (stories260k, 16 tokens) while idle, then while a fine-tuning job trains on stories260k.
 * Run: `npm run bench -- trainer` (or `npx tsx bench/trainer.ts`); writes bench-results/trainer.json and
 * bench-results/trainer-chat.json. Anchor (issue 13): PyTorch 1.13 eager ≈ 1,540 tokens/s on the
 * stories260k case on the 2-core machine; goal ≥ 20,000.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../hosts/node/config.ts";
import { startPlatform } from "../hosts/node/server.ts";
import { loadDecoderConfig } from "../services/model/config.ts";
import { LORA_TARGETS } from "../services/model/lora-layout.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { openWeights } from "../services/model/safetensors.ts";
import { createRandom } from "../services/inference/sampler.ts";
import { makeBatch, type EncodedExample } from "../trainer/dataset.ts";
import { stepBatches, stepCells } from "../trainer/packing.ts";
import { estimateStepBytes, modelWeightBytes } from "../trainer/memory.ts";
import { openStepRunner } from "../trainer/step-graph.ts";
import { createTrainState, resolveHyperparameters, trainStep } from "../trainer/train.ts";
import { percentile, report } from "./report.ts";
import { dpoThroughput } from "./trainer-dpo.ts";
import { promptTuningThroughput } from "./trainer-prompt-tuning.ts";
import { tinyLlamaShape, writeSyntheticModel } from "./synthetic-model.ts";
import { BATCH, randomExamples, SEQ } from "./trainer-case.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PYTORCH_TOKENS_PER_S = 1540;
const GOAL_TOKENS_PER_S = 20000;
/** What bounds the step (from `npm run bench -- trainer-profile`); printed with the table. */
const BOUND_BY =
  "the attention tensors [B, kvHeads, group·T, T] (4M floats here): per layer 6 batched products with a" +
  " head-size (8) side (QKᵀ, P·V, dP, dQ, dK, dV) and 4 elementwise passes (mask add, softmax, dP − D," +
  " P·(...)), memory-bound at ~60% of the kernel time; the linear layers are ~15%. Per-op overhead is" +
  " small now (~1,400 kernels a step). More needs a fused attention forward + backward kernel, which" +
  " onnxruntime's CPU inference build does not have.";
const TINYLLAMA_SEQ = Number(process.env.BENCH_TRAINER_TINYLLAMA_SEQ ?? SEQ);
const TINYLLAMA_BATCH = Number(process.env.BENCH_TRAINER_TINYLLAMA_BATCH ?? BATCH);
const CHATS = Number(process.env.BENCH_TRAINER_CHATS ?? 20);
const MIB = 1 << 20;

interface ThroughputCase {
  name: string;
  modelDir: string;
  seq: number;
  batch: number;
  threads: number[];
  warmup: number;
  steps: number;
  note?: string;
}

async function throughput(c: ThroughputCase, cacheDir: string): Promise<Record<string, string | number>[]> {
  const config = await loadDecoderConfig(c.modelDir);
  const h = resolveHyperparameters({ rank: 8, alpha: 16, targetModules: [...LORA_TARGETS], learningRate: 1e-3 });
  const batch = makeBatch(randomExamples(config.vocabSize, 1, c.seq, c.batch), 0);
  const estimate = estimateStepBytes(config, { batch: c.batch, seq: batch.seq, targets: h.targetModules, rank: h.rank, dropout: false, weightBytes: await modelWeightBytes(c.modelDir) });
  const rows: Record<string, string | number>[] = [];
  for (const threads of c.threads) {
    const store = await openWeights(c.modelDir);
    const runner = await openStepRunner({ config, weights: store, targets: h.targetModules, cacheDir, threads });
    store.close();
    const state = createTrainState(config, h, 1, c.warmup + c.steps);
    for (let i = 0; i < c.warmup; i++) await trainStep(runner, state, [batch], h.maxGradNorm);
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    let tokens = 0;
    for (let i = 0; i < c.steps; i++) tokens += (await trainStep(runner, state, [batch], h.maxGradNorm)).tokens;
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStarted);
    await runner.close();
    const tps = tokens / seconds;
    rows.push({
      case: `${c.name} r=8 all linear, T=${c.seq}, B=${c.batch}${c.note ? ` (${c.note})` : ""}`,
      threads,
      "step ms": (seconds * 1000) / c.steps,
      // process CPU time (user + system) per step: steadier than wall time on a shared machine
      "cpu ms/step": (cpu.user + cpu.system) / 1000 / c.steps,
      "tokens/s": Math.round(tps),
      "vs PyTorch 1.13 (1,540)": c.name === "stories260k" ? `${(tps / PYTORCH_TOKENS_PER_S).toFixed(1)}x` : "",
      "goal 20,000": c.name === "stories260k" ? (tps >= GOAL_TOKENS_PER_S ? "met" : "not met") : "",
      "peak RSS MiB": Math.round(process.resourceUsage().maxRSS / 1024),
      "estimate MiB": Math.round(estimate / MIB),
    });
    console.log(`  ${rows.at(-1)!.case}, ${threads} thread(s): ${Math.round(tps)} tokens/s`);
  }
  return rows;
}

// --- sequence packing on short examples ---

/** Steps of 8 mixed-length examples (one of SEQ tokens, seven of 16-80), the padding packing removes. */
function mixedExamples(vocab: number, seed: number): EncodedExample[] {
  const random = createRandom(seed);
  const lengths = [SEQ, ...Array.from({ length: BATCH - 1 }, () => 16 + Math.floor(random() * 64))];
  return lengths.map((n) => {
    const ids = [1, ...Array.from({ length: n }, () => 3 + Math.floor(random() * (vocab - 3)))];
    return { ids, weights: ids.map((_, t) => (t >= n / 4 ? 1 : 0)), truncated: false };
  });
}

/**
 * Counted (real) tokens/s of stories260k steps over the mixed examples with packing off and on
 * (trainer/packing.ts), interleaved `rounds` times (medians), 1 thread: the packed step computes over
 * fewer rows of the same length, with the same loss and gradients.
 */
async function packingThroughput(modelDir: string, cacheDir: string, rounds = 3, steps = 3): Promise<Record<string, string | number>[]> {
  const config = await loadDecoderConfig(modelDir);
  const h = resolveHyperparameters({ rank: 8, alpha: 16, targetModules: [...LORA_TARGETS], learningRate: 1e-3 });
  const examples = mixedExamples(config.vocabSize, 2);
  const store = await openWeights(modelDir);
  const runners = await Promise.all([false, true].map((packed) => openStepRunner({ config, weights: store, targets: h.targetModules, cacheDir, threads: 1, packed })));
  store.close();
  const samples: number[][] = [[], []];
  const shapes: string[] = [];
  try {
    for (const [k, runner] of runners.entries()) {
      const micro = stepBatches(examples, BATCH, 0, k === 1);
      shapes[k] = micro.map((b) => `${b.batch}×${b.seq}`).join(" + ");
      await trainStep(runner, createTrainState(config, h, 1, 100), micro, h.maxGradNorm); // warm-up
    }
    for (let round = 0; round < rounds; round++) {
      for (const [k, runner] of runners.entries()) {
        const state = createTrainState(config, h, 1, 100);
        const micro = stepBatches(examples, BATCH, 0, k === 1);
        const started = performance.now();
        let tokens = 0;
        for (let i = 0; i < steps; i++) tokens += (await trainStep(runner, state, micro, h.maxGradNorm)).tokens;
        samples[k]!.push(tokens / ((performance.now() - started) / 1000));
      }
    }
  } finally {
    for (const r of runners) await r.close();
  }
  const cells = stepCells(examples, BATCH);
  return ["off", "on"].map((packing, k) => ({
    case: `stories260k packing ${packing}: ${BATCH} examples (1 × ${SEQ}, ${BATCH - 1} × 16-80 tokens)`,
    threads: 1,
    rows: shapes[k]!,
    "cells (rows × T)": k === 0 ? cells.unpacked : cells.packed,
    "tokens/s": Math.round(percentile(samples[k]!, 50)),
    "vs off": k === 0 ? "" : `${(percentile(samples[1]!, 50) / percentile(samples[0]!, 50)).toFixed(2)}x`,
  }));
}

// --- chat latency with and without a training job ---

const ADMIN = "bench-admin-key-0123456789";

async function chatLatency(): Promise<Record<string, string | number>[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "sy-bench-trainer-chat-"));
  const platform = await startPlatform(
    loadConfig({ SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_PORT: "0", SWITCHYARD_LOG_LEVEL: "warn", SWITCHYARD_ADMIN_KEY: ADMIN, SWITCHYARD_REQUESTS_PER_MINUTE: "0", SWITCHYARD_TRAINER: "on" }),
    { announce: () => {} },
  );
  const call = async (path: string, key: string, init: { method?: string; json?: unknown; body?: FormData } = {}) => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (init.json !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${platform.url}${path}`, { method: init.method ?? (init.json === undefined && !init.body ? "GET" : "POST"), headers, body: init.body ?? (init.json === undefined ? undefined : JSON.stringify(init.json)) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  try {
    const tenant = (await call("/v1/admin/tenants", ADMIN, { json: { name: "bench" } })).body;
    const key = (await call(`/v1/admin/tenants/${tenant.id}/keys`, ADMIN, { json: {} })).body.key as string;
    const chat = async (i: number) => {
      const started = performance.now();
      const res = await call("/v1/chat/completions", key, { json: { model: "stories260k", messages: [{ role: "user", content: `Tell me a story about fox number ${i}.` }], max_tokens: 16, temperature: 0 } });
      if (res.status !== 200) throw new Error(`chat answered ${res.status}: ${JSON.stringify(res.body)}`);
      return performance.now() - started;
    };
    const measure = async () => {
      const samples: number[] = [];
      for (let i = 0; i < CHATS; i++) samples.push(await chat(i));
      return samples;
    };
    await chat(-1); // warm-up
    const idle = await measure();

    const lines = Array.from({ length: 64 }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `What is the name of fox number ${i}?` }, { role: "assistant", content: `The fox number ${i} is called Pip ${i % 7}.` }] }));
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", new Blob([lines.join("\n")]), "train.jsonl");
    const file = (await call("/v1/files", key, { body: form })).body;
    const job = (await call("/v1/fine_tuning/jobs", key, { json: { model: "stories260k", training_file: file.id, switchyard: { max_steps: 100000, eval_every: 100000 } } })).body;
    if (!job.id) throw new Error(`job not created: ${JSON.stringify(job)}`);
    const waitStarted = performance.now();
    for (;;) {
      const events = (await call(`/v1/fine_tuning/jobs/${job.id}/events?limit=5`, key)).body;
      if (events.data?.some((e: { type: string }) => e.type === "metrics")) break;
      const status = (await call(`/v1/fine_tuning/jobs/${job.id}`, key)).body.status;
      if (status === "failed" || status === "cancelled") throw new Error(`the job ${status} before training`);
      if (performance.now() - waitStarted > 300_000) throw new Error("the job did not start training within 5 minutes");
      await new Promise((r) => setTimeout(r, 500));
    }
    const stepOf = async () => ((await call(`/v1/fine_tuning/jobs/${job.id}/events?limit=1`, key)).body.data?.[0]?.data?.step as number | undefined) ?? 0;
    const stepBefore = await stepOf();
    const training = await measure();
    const stepsDuring = (await stepOf()) - stepBefore;
    await call(`/v1/fine_tuning/jobs/${job.id}/cancel`, key, { json: {} });
    const row = (what: string, samples: number[], note = "") => ({
      edge: what,
      chats: samples.length,
      "p50 ms": percentile(samples, 50),
      "p99 ms": percentile(samples, 99),
      note,
    });
    return [row("idle (trainer process waiting)", idle), row("a fine-tuning job training", training, `${stepsDuring} training steps ran during the chats`)];
  } finally {
    await platform.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const stories = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, ROOT));
  const workDir = await mkdtemp(join(tmpdir(), "sy-bench-trainer-"));
  const rows: Record<string, string | number>[] = [];
  try {
    const cacheDir = join(workDir, "compiled");
    if (process.env.BENCH_TRAINER_ONLY === "packing") {
      report("trainer-packing", await packingThroughput(stories, cacheDir), { rounds: 3, steps: 3 });
      return;
    }
    rows.push(...(await throughput({ name: "stories260k", modelDir: stories, seq: SEQ, batch: BATCH, threads: [1, 2], warmup: 2, steps: 6 }, cacheDir)));
    rows.push(...(await dpoThroughput(stories, cacheDir, [1, 2])));
    rows.push(...(await promptTuningThroughput(stories, workDir, [1, 2])));
    const tinyDir = join(workDir, "tinyllama-2l");
    await writeSyntheticModel(tinyDir, tinyLlamaShape(2));
    const shortened = TINYLLAMA_SEQ !== SEQ || TINYLLAMA_BATCH !== BATCH ? "shortened by BENCH_TRAINER_TINYLLAMA_SEQ/_BATCH: too slow here" : undefined;
    rows.push(...(await throughput({ name: "random TinyLlama-1.1B shapes, 2 layers", modelDir: tinyDir, seq: TINYLLAMA_SEQ, batch: TINYLLAMA_BATCH, threads: [2], warmup: 1, steps: 2, note: shortened }, cacheDir)));
    const packing = await packingThroughput(stories, cacheDir);
    for (const r of packing) console.log(`  ${r.case}: ${r["tokens/s"]} tokens/s (${r.rows})`);
    report("trainer-packing", packing, { rounds: 3, steps: 3 });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  console.log(`anchor: PyTorch 1.13 eager ≈ ${PYTORCH_TOKENS_PER_S} tokens/s on the stories260k case (2 cores); goal ≥ ${GOAL_TOKENS_PER_S} tokens/s`);
  console.log(`bound by: ${BOUND_BY}`);
  report("trainer", rows, { boundBy: BOUND_BY, anchor: { pytorchTokensPerS: PYTORCH_TOKENS_PER_S }, goal: { tokensPerS: GOAL_TOKENS_PER_S }, seq: SEQ, batch: BATCH, tinyLlama: { seq: TINYLLAMA_SEQ, batch: TINYLLAMA_BATCH } });
  report("trainer-chat", await chatLatency(), { chats: CHATS, maxTokens: 16 });
}

await main();
