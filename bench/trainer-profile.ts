/**
 * Where a training step's time goes: the bench's case (stories260k, LoRA r=8 on every linear layer,
 * T=256, B=8) run under onnxruntime's profiler, kernel time summed by op type and the slowest nodes.
 * Run: `npm run bench -- trainer-profile` (THREADS=2 for two intra-op threads); writes
 * bench-results/trainer-profile.json. Times are per step (the mean over the profiled steps).
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadDecoderConfig } from "../services/model/config.ts";
import { LORA_TARGETS } from "../services/model/lora-layout.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { openWeights } from "../services/model/safetensors.ts";
import { makeBatch } from "../trainer/dataset.ts";
import { openStepRunner } from "../trainer/step-graph.ts";
import { createTrainState, resolveHyperparameters, trainStep } from "../trainer/train.ts";
import { report } from "./report.ts";
import { randomExamples } from "./trainer-case.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const STEPS = 3;
const TOP_NODES = 40;

interface TraceEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

async function main(): Promise<void> {
  const threads = Number(process.env.THREADS ?? 1);
  const modelDir = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, ROOT));
  const config = await loadDecoderConfig(modelDir);
  const dir = await mkdtemp(join(tmpdir(), "sy-bench-trainer-profile-"));
  try {
    const h = resolveHyperparameters({ rank: 8, alpha: 16, targetModules: [...LORA_TARGETS], learningRate: 1e-3 });
    const batch = makeBatch(randomExamples(config.vocabSize, 1), 0);
    const store = await openWeights(modelDir);
    const runner = await openStepRunner({ config, weights: store, targets: h.targetModules, cacheDir: dir, threads, profilePrefix: join(dir, "trace") });
    store.close();
    const state = createTrainState(config, h, 1, STEPS + 1);
    await trainStep(runner, state, [batch], h.maxGradNorm); // warmup (its kernels are in the trace too: excluded below)
    const started = performance.now();
    for (let i = 0; i < STEPS; i++) await trainStep(runner, state, [batch], h.maxGradNorm);
    const wallMs = (performance.now() - started) / STEPS;
    await runner.close();
    const file = (await readdir(dir)).find((f) => f.startsWith("trace"));
    if (!file) throw new Error("onnxruntime wrote no profile");
    const events = (JSON.parse(await readFile(join(dir, file), "utf8")) as TraceEvent[]).filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time"));
    const perRun = events.length / (STEPS + 1);
    const measured = events.slice(perRun); // drop the warmup run
    const byOp = new Map<string, { us: number; nodes: Set<string> }>();
    const byNode = new Map<string, { op: string; us: number }>();
    for (const e of measured) {
      const op = e.args?.op_name ?? "?";
      const entry = byOp.get(op) ?? byOp.set(op, { us: 0, nodes: new Set() }).get(op)!;
      entry.us += e.dur;
      entry.nodes.add(e.name);
      const node = byNode.get(e.name) ?? byNode.set(e.name, { op, us: 0 }).get(e.name)!;
      node.us += e.dur;
    }
    const total = [...byOp.values()].reduce((s, v) => s + v.us, 0);
    const ms = (us: number) => us / 1000 / STEPS;
    const rows = [...byOp.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .map(([op, v]) => ({ op, nodes: v.nodes.size, "ms/step": ms(v.us), share: `${((100 * v.us) / total).toFixed(1)}%` }));
    console.log(`threads ${threads}: ${perRun} kernels per step, ${ms(total).toFixed(1)} ms of kernel time per step (${wallMs.toFixed(1)} ms wall, profiling on)`);
    report("trainer-profile", rows, {
      threads,
      kernelsPerStep: perRun,
      kernelMsPerStep: ms(total),
      wallMsPerStep: wallMs,
      slowestNodes: [...byNode.entries()]
        .sort((a, b) => b[1].us - a[1].us)
        .slice(0, TOP_NODES)
        .map(([name, v]) => ({ node: name.replace(/_kernel_time$/, ""), op: v.op, msPerStep: ms(v.us) })),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
