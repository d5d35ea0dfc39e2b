/**
 * The DPO row of the trainer benchmark (bench/trainer.ts): full DPO optimizer steps (policy forward +
 * backward of chosen and rejected rows in one onnxruntime session, gradient pull-back, clipping, AdamW)
 * on stories260k at the SFT case's sizes: T = 256, 8 rows per run = 4 pairs (chosen + rejected), r = 8
 * on every linear layer. Reference log-probs (once per pair, before training) are not timed.
 */
import { loadDecoderConfig } from "../services/model/config.ts";
import { LORA_TARGETS } from "../services/model/lora-layout.ts";
import { openWeights } from "../services/model/safetensors.ts";
import { openDpoStepRunner } from "../trainer/dpo/step-graph.ts";
import { dpoStep, type Reference } from "../trainer/dpo/train.ts";
import type { EncodedPair } from "../trainer/dpo/pairs.ts";
import { createTrainState, resolveHyperparameters } from "../trainer/train.ts";
import { BATCH, randomExamples, SEQ } from "./trainer-case.ts";

export async function dpoThroughput(modelDir: string, cacheDir: string, threadCounts: number[], warmup = 2, steps = 6): Promise<Record<string, string | number>[]> {
  const config = await loadDecoderConfig(modelDir);
  const h = resolveHyperparameters({ rank: 8, alpha: 16, targetModules: [...LORA_TARGETS], learningRate: 1e-3 });
  const rows = randomExamples(config.vocabSize, 1, SEQ, BATCH);
  const P = BATCH / 2;
  const pairs: EncodedPair[] = Array.from({ length: P }, (_, i) => ({ chosen: rows[i]!, rejected: rows[i + P]!, index: i }));
  const ref: Reference = { chosen: new Float64Array(P).fill(-1000), rejected: new Float64Array(P).fill(-1000) };
  const out: Record<string, string | number>[] = [];
  for (const threads of threadCounts) {
    const store = await openWeights(modelDir);
    const runner = await openDpoStepRunner({ config, weights: store, targets: h.targetModules, lossType: "sigmoid", cacheDir, threads });
    store.close();
    const state = createTrainState(config, h, 1, warmup + steps);
    const step = () => dpoStep(runner, state, [pairs], ref, { beta: 0.1, lossType: "sigmoid" }, h.maxGradNorm);
    for (let i = 0; i < warmup; i++) await step();
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    let tokens = 0;
    for (let i = 0; i < steps; i++) tokens += (await step()).tokens;
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStarted);
    await runner.close();
    out.push({
      case: `DPO stories260k r=8 all linear, T=${SEQ}, ${P} pairs = ${BATCH} rows`,
      threads,
      "step ms": (seconds * 1000) / steps,
      "cpu ms/step": (cpu.user + cpu.system) / 1000 / steps,
      "tokens/s": Math.round(tokens / seconds),
      "pairs/s": Number(((P * steps) / seconds).toFixed(2)),
      "peak RSS MiB": Math.round(process.resourceUsage().maxRSS / 1024),
    });
    console.log(`  ${out.at(-1)!.case}, ${threads} thread(s): ${out.at(-1)!["pairs/s"]} pairs/s, ${out.at(-1)!["tokens/s"]} tokens/s`);
  }
  return out;
}
