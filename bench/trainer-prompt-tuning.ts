/**
 * The prompt-tuning row of the trainer benchmark (bench/trainer.ts): trainPromptTuning steps
 * (forward + backward to the `virtual_embeddings` input in one onnxruntime session, AdamW on the
 * N × hidden embeddings) on stories260k at the SFT case's sizes: B = 8 rows of T = 256 tokens, each
 * with 8 virtual tokens in front (264 input tokens a row, all counted in tokens/s as the trainer counts
 * them). Timed from the end of the warm-up steps to the last step by the onStep callback, so graph
 * building, session start and the (one-example) validation before and after are not in it.
 * Run alone: `npm run bench -- trainer prompt-tuning` (bench-results/trainer-prompt-tuning.json).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadDecoderConfig } from "../services/model/config.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { BENCH_ROOT, report } from "./report.ts";
import { trainPromptTuning } from "../trainer/prompt-tuning.ts";
import { BATCH, randomExamples, SEQ } from "./trainer-case.ts";

const VIRTUAL_TOKENS = 8;

export async function promptTuningThroughput(modelDir: string, workDir: string, threadCounts: number[], warmup = 2, steps = 6): Promise<Record<string, string | number>[]> {
  const config = await loadDecoderConfig(modelDir);
  const training = randomExamples(config.vocabSize, 1, SEQ, BATCH);
  const rows: Record<string, string | number>[] = [];
  for (const threads of threadCounts) {
    const dir = await mkdtemp(join(workDir, "prompt-tuning-"));
    let started = 0;
    let cpuStarted = process.cpuUsage();
    let seconds = 0;
    let cpu = { user: 0, system: 0 };
    try {
      const result = await trainPromptTuning({
        modelDir,
        workDir: dir,
        training,
        validation: training.slice(0, 1),
        numVirtualTokens: VIRTUAL_TOKENS,
        init: "random",
        steps: warmup + steps,
        learningRate: 1e-2,
        batchSize: BATCH,
        seed: 1,
        threads,
        onStep(step) {
          if (step === warmup) {
            started = performance.now();
            cpuStarted = process.cpuUsage();
          } else if (step === warmup + steps) {
            seconds = (performance.now() - started) / 1000;
            cpu = process.cpuUsage(cpuStarted);
          }
        },
      });
      const tokens = (result.tokens / (warmup + steps)) * steps; // every step has the same batch
      rows.push({
        case: `prompt tuning stories260k, ${VIRTUAL_TOKENS} virtual tokens, T=${SEQ}+${VIRTUAL_TOKENS}, B=${BATCH}`,
        threads,
        "step ms": (seconds * 1000) / steps,
        // process CPU time (user + system) per step: steadier than wall time on a shared machine
        "cpu ms/step": (cpu.user + cpu.system) / 1000 / steps,
        "tokens/s": Math.round(tokens / seconds),
        "peak RSS MiB": Math.round(process.resourceUsage().maxRSS / 1024),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    console.log(`  ${rows.at(-1)!.case}, ${threads} thread(s): ${rows.at(-1)!["tokens/s"]} tokens/s, ${Number(rows.at(-1)!["cpu ms/step"]).toFixed(0)} CPU-ms/step`);
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const workDir = await mkdtemp(join(tmpdir(), "sy-bench-trainer-pt-"));
  try {
    const stories = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, BENCH_ROOT));
    report("trainer-prompt-tuning", await promptTuningThroughput(stories, workDir, [1, 2]), { seq: SEQ, batch: BATCH, virtualTokens: VIRTUAL_TOKENS });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
