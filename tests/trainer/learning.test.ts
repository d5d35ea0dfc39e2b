/**
 * trainLora learns a small made-up question-and-answer set on stories260k (tests/fixtures/training/qa.jsonl,
 * 12 chats), validated on the same chats (the point is memorising the facts):
 *   - the best validation loss falls below 25% of the base model's (measured: ≈ 4.07 -> ≈ 0.4);
 *   - the exported adapter, through the upload path (readAdapterUpload -> loadPeftAdapter) and the
 *     serving engine (unpinnedAdapters), answers at least 9 of the 12 questions greedily with the
 *     trained answer (the base model answers none). The greedy text must START with the answer:
 *     stories260k never learned its EOS token (llama2.c's TinyStories separates stories with BOS, so
 *     the tied EOS row is untrained) and a rank-8 adapter does not lift it in 100 steps. The EOS target
 *     is most of the remaining loss (token accuracy ≈ 0.92 = every answer token right, EOS wrong);
 *   - same seed -> identical adapter bytes; another seed -> different bytes; progress and cancellation;
 *   - early stopping keeps the best checkpoint; without a validation file 10% is held out.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../services/adapters/peft.ts";
import { readAdapterUpload } from "../../services/adapters/upload.ts";
import { parseTrainingData, type TrainingExample } from "../../services/files/training-data.ts";
import { createEngine, unpinnedAdapters } from "../../services/inference/engine.ts";
import { loadChatTemplate } from "../../services/model/chat-template.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { parseSafetensorsBytes } from "../../services/model/safetensors.ts";
import { PEFT_MODEL_FILE } from "../../trainer/export.ts";
import { trainLora, type TrainProgress, type TrainRequest } from "../../trainer/train.ts";
import { collect, params as sampling } from "../helpers/generate.ts";
import { findModel } from "../helpers/model-path.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");

describe("trainLora on stories260k", () => {
  let modelDir: string;
  let cacheDir: string;
  let examples: TrainingExample[];
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    cacheDir = await mkdtemp(join(tmpdir(), "sy-train-learn-"));
    const parsed = parseTrainingData(readFileSync(FIXTURE, "utf8"));
    expect(parsed.errors).toEqual([]);
    examples = parsed.examples;
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));
  const request = (overrides: Partial<TrainRequest["hyperparameters"]> = {}, seed = 1): TrainRequest => ({
    modelDir,
    training: examples,
    validation: examples,
    seed,
    cacheDir,
    threads: 2,
    hyperparameters: { learningRate: 1e-2, maxSteps: 100, epochs: 1000, batchSize: 4, rank: 8, alpha: 16, evalEvery: 20, ...overrides },
  });

  it("learns the answers: validation loss well below the base model's, and the served adapter answers them", async () => {
    const progress: TrainProgress[] = [];
    const started = performance.now();
    const result = await trainLora(request(), { onStep: (p) => void progress.push(p) });
    const seconds = (performance.now() - started) / 1000;
    expect(result.cancelled).toBe(false);
    expect(progress.map((p) => p.step)).toEqual(Array.from({ length: result.steps }, (_, i) => i + 1));
    const evaluated = progress.filter((p) => p.validLoss !== undefined);
    expect(evaluated.at(-1)!.step).toBe(result.steps);
    expect(result.bestValidLoss).toBe(Math.min(...evaluated.map((p) => p.validLoss!)));
    expect(result.bestValidLoss).toBeLessThan(0.25 * result.baseValidLoss);
    const tps = progress.reduce((s, p) => s + p.tokensPerSecond, 0) / progress.length;
    console.log(
      `stories260k QA: ${result.steps} steps in ${seconds.toFixed(1)} s, valid loss ${result.baseValidLoss.toFixed(3)} -> ${result.bestValidLoss.toFixed(3)} (best step ${result.bestStep}), ` +
        `token accuracy ${evaluated.at(-1)!.tokenAccuracy!.toFixed(3)}, ${result.trainedTokens} tokens, mean ${Math.round(tps)} tokens/s`,
    );

    const config = await loadDecoderConfig(modelDir);
    const limits = { maxRank: 16 };
    const upload = await readAdapterUpload({ config: result.adapter.config, model: result.adapter.model, modelFileName: PEFT_MODEL_FILE }, { maxBytes: 16 << 20, base: config, limits });
    expect(upload.summary.rank).toBe(8);
    const engine = await createEngine({ modelDir, cacheDir, maxBatch: 4, adapters: unpinnedAdapters(async (id) => loadPeftAdapter(id, upload.files, config, limits)) });
    const template = await loadChatTemplate(modelDir);
    try {
      const answer = async (question: string, adapter?: string) => {
        const prompt = engine.tokenize(template.render([{ role: "user", content: question }], { addGenerationPrompt: true }), { addSpecialTokens: template.encodeWithSpecialTokens });
        return (await collect(engine.generate({ promptTokens: prompt, params: sampling({ maxTokens: 24 }), adapter }))).text.trim();
      };
      const rows = await Promise.all(
        examples.map(async (e) => {
          const question = e.messages[0]!.content;
          const want = e.messages[1]!.content;
          return { question, want, tuned: await answer(question, "tuned"), base: await answer(question) };
        }),
      );
      for (const r of rows) console.log(`${r.tuned.startsWith(r.want) ? "ok  " : "MISS"} ${r.question} -> ${JSON.stringify(r.tuned)} (base: ${JSON.stringify(r.base.slice(0, 30))})`);
      const right = rows.filter((r) => r.tuned.startsWith(r.want)).length;
      console.log(`served adapter: ${right}/${rows.length} answers; base model: ${rows.filter((r) => r.base.startsWith(r.want)).length}`);
      expect(right).toBeGreaterThanOrEqual(9);
      expect(rows.filter((r) => r.base.startsWith(r.want))).toHaveLength(0);
    } finally {
      await engine.close();
    }
  }, 120_000);

  it("is deterministic for a seed (identical adapter bytes), differs across seeds, and cancels within one step", async () => {
    const short = { maxSteps: 4, evalEvery: 2 };
    // Micro-batches of 2 under batches of 4: the accumulation path of the loop.
    const accumulated = (seed: number) => trainLora({ ...request(short, seed), microBatchSize: 2 });
    const [a, b, c] = [await accumulated(7), await accumulated(7), await accumulated(8)];
    expect(a.steps).toBe(4);
    expect(Buffer.from(a.adapter.model).equals(Buffer.from(b.adapter.model))).toBe(true);
    expect(Buffer.from(a.adapter.config).equals(Buffer.from(b.adapter.config))).toBe(true);
    expect(Buffer.from(a.adapter.model).equals(Buffer.from(c.adapter.model))).toBe(false);

    const controller = new AbortController();
    const seen: number[] = [];
    const cancelled = await trainLora(request({ maxSteps: 50 }, 7), {
      signal: controller.signal,
      onStep: (p) => {
        seen.push(p.step);
        if (p.step === 3) controller.abort();
      },
    });
    expect(cancelled.cancelled).toBe(true);
    expect(cancelled.steps).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
    let calls = 0;
    const stopped = await trainLora(request({ maxSteps: 50 }, 7), { shouldStop: () => ++calls > 2 });
    expect(stopped.steps).toBe(2);
    expect(stopped.cancelled).toBe(true);
  }, 60_000);
});

describe("trainLora early stopping and the held-out split (stories260k)", () => {
  let cacheDir: string;
  let examples: TrainingExample[];
  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), "sy-train-stop-"));
    examples = parseTrainingData(readFileSync(FIXTURE, "utf8")).examples;
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));
  const run = async (validation: TrainingExample[] | undefined, learningRate: number, evalEvery: number, warmupRatio: number, seed: number) => {
    const progress: TrainProgress[] = [];
    const result = await trainLora(
      { modelDir: findModel("stories260k"), training: examples, validation, seed, cacheDir, threads: 2, hyperparameters: { learningRate, maxSteps: 100, epochs: 100, batchSize: 4, evalEvery, patience: 2, warmupRatio } },
      { onStep: (p) => void progress.push(p) },
    );
    const evaluated = progress.filter((p) => p.validLoss !== undefined);
    expect(result.stoppedEarly).toBe(true);
    expect(result.steps).toBeLessThan(100);
    expect(evaluated.at(-1)!.step).toBe(result.steps);
    // The `patience` evaluations after the best one did not improve on it, and training stopped right there.
    const after = evaluated.filter((p) => p.step > result.bestStep);
    expect(after).toHaveLength(2);
    for (const p of after) expect(p.validLoss!).toBeGreaterThanOrEqual(result.bestValidLoss);
    console.log(`early stop (lr ${learningRate}): ${result.steps} steps, best step ${result.bestStep}, valid ${result.baseValidLoss.toFixed(3)} -> ${result.bestValidLoss.toFixed(3)}; after: ${after.map((p) => p.validLoss!.toFixed(3)).join(", ")}`);
    return { result, evaluated };
  };

  it("stops after `patience` evaluations without improvement and exports the best checkpoint", async () => {
    // lr 3e-2 (3x the one that learns) with 5 warmup steps improves at first, then overshoots.
    const { result, evaluated } = await run(examples, 3e-2, 5, 0.05, 1);
    expect(result.bestStep).toBeGreaterThan(0);
    const best = evaluated.find((p) => p.step === result.bestStep)!;
    expect(best.validLoss).toBe(result.bestValidLoss);
    expect(result.bestEvaluation).toEqual({ loss: best.validLoss, tokenAccuracy: best.tokenAccuracy });
    expect(result.validation).toEqual(examples);
    expect(result.bestValidLoss).toBeLessThan(result.baseValidLoss);
  }, 60_000);

  it("holds out 10% without a validation file; when training never beats the base, the identity adapter (B = 0) is exported", async () => {
    // The held-out chat is a fact never trained on, and lr 5e-2 overshoots: no evaluation beats step 0.
    const { result } = await run(undefined, 5e-2, 2, 0, 3);
    expect(result.bestStep).toBe(0);
    expect(result.bestValidLoss).toBe(result.baseValidLoss);
    // The result carries what was evaluated, for the job's report: the one held-out chat, and step 0's evaluation as the best.
    expect(result.validation).toHaveLength(1);
    expect(examples).toContainEqual(result.validation[0]);
    expect(result.bestEvaluation).toEqual(result.baseEvaluation);
    expect(result.baseEvaluation.loss).toBe(result.baseValidLoss);
    const store = parseSafetensorsBytes(result.adapter.model);
    try {
      const bs = store.names().filter((n) => n.endsWith("lora_B.weight"));
      expect(bs.length).toBeGreaterThan(0);
      for (const n of bs) expect(store.getF32(n).every((v) => v === 0), n).toBe(true);
    } finally {
      store.close();
    }
  }, 60_000);

  it("with `earlyStopping: false` trains every step and still exports the best", async () => {
    // The settings of the case above, which stops after 2 evaluations without improvement.
    const progress: TrainProgress[] = [];
    const result = await trainLora(
      { modelDir: findModel("stories260k"), training: examples, seed: 3, cacheDir, threads: 2, hyperparameters: { learningRate: 5e-2, maxSteps: 12, epochs: 100, batchSize: 4, evalEvery: 2, patience: 2, warmupRatio: 0, earlyStopping: false } },
      { onStep: (p) => void progress.push(p) },
    );
    expect(result.stoppedEarly).toBe(false);
    expect(result.steps).toBe(12);
    expect(progress.filter((p) => p.validLoss !== undefined).map((p) => p.step)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(result.bestValidLoss).toBe(Math.min(result.baseValidLoss, ...progress.flatMap((p) => (p.validLoss === undefined ? [] : [p.validLoss]))));
  }, 60_000);
});
