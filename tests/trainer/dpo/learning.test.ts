/**
 * trainDpo on stories260k with the preference set tests/fixtures/training/preferences.jsonl (32 pairs:
 * "How did NAME feel PLACE?" -> preferred "NAME was very happy and smiled.", non-preferred "... sad and
 * cried."). The last 8 pairs (two names never trained on) are the validation set, so what is checked is
 * a learned preference, not memorised pairs:
 *   - at step 0 policy = reference: validation loss log 2, margins 0;
 *   - after training, the log-prob margin over the reference, (π_c − π_r) − (ref_c − ref_r), is positive
 *     on ≥ 90% of the validation pairs and the best validation loss is below the start's;
 *   - the job's report (trainer/dpo/report.ts) carries those margins, and the served adapter's greedy answers
 *     move to the preferred ones where the pair differs: continuing "NAME was very" in the assistant's turn,
 *     ≥ 90% say "happy" (more than the base model), none more "sad", and the report counts them as moved;
 *   - TRL's metrics on every step, eval_ ones on evaluated steps; the same seed gives the same bytes, and a
 *     run resumed from a state checkpoint the uninterrupted run's bytes; the fingerprint covers the method.
 *   - continuing an adapter, the reference is that adapter (step 0: loss log 2, margins 0).
 * (The reference = the base model's log-probs is checked exactly on a tiny model:
 * tests/services/model/llama/preference-gradients.test.ts.)
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePreferenceData, type PreferenceExample } from "../../../services/files/preference-data.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import type { TrainCheckpoint } from "../../../trainer/checkpoint.ts";
import { reportPreferences } from "../../../trainer/dpo/report.ts";
import { describePreferenceResult } from "../../../trainer/dpo/report-scores.ts";
import { dpoFingerprint, trainDpo, type DpoTrainRequest } from "../../../trainer/dpo/train.ts";
import { exportPeftAdapter } from "../../../trainer/export.ts";
import { initLoraParams } from "../../../trainer/lora-params.ts";
import type { TrainProgress } from "../../../trainer/train.ts";
import { findModel } from "../../helpers/model-path.ts";

const FIXTURE = join(import.meta.dirname, "../../fixtures/training/preferences.jsonl");

describe("trainDpo on stories260k", () => {
  let modelDir: string;
  let cacheDir: string;
  let training: PreferenceExample[];
  let validation: PreferenceExample[];
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    cacheDir = await mkdtemp(join(tmpdir(), "sy-dpo-learn-"));
    const parsed = parsePreferenceData(readFileSync(FIXTURE, "utf8"));
    expect(parsed.errors).toEqual([]);
    expect(parsed.examples).toHaveLength(32);
    training = parsed.examples.slice(0, 24);
    validation = parsed.examples.slice(24);
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));
  const request = (overrides: Partial<DpoTrainRequest["hyperparameters"]> = {}): DpoTrainRequest => ({
    modelDir,
    training,
    validation,
    seed: 1,
    cacheDir,
    threads: 2,
    dpo: { beta: 0.1 },
    hyperparameters: { learningRate: 2e-3, maxSteps: 40, epochs: 1000, batchSize: 8, rank: 8, alpha: 16, evalEvery: 10, patience: 10, ...overrides },
  });

  it("learns the preference: positive margins over the reference on >= 90% of held-out pairs, and greedy answers move to the preferred", async () => {
    const progress: TrainProgress[] = [];
    const result = await trainDpo(request(), { onStep: (p) => void progress.push(p) });
    expect(result.cancelled).toBe(false);
    expect(result.baseValidLoss).toBeCloseTo(Math.log(2), 5);
    expect(result.baseRewards["eval_rewards/margins"]).toBeCloseTo(0, 5);
    for (const p of progress) expect(Object.keys(p.metrics ?? {})).toEqual(expect.arrayContaining(["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"]));
    const evaluated = progress.filter((p) => p.validLoss !== undefined);
    expect(evaluated.map((p) => p.step)).toEqual([10, 20, 30, 40]);
    for (const p of evaluated) expect(p.metrics!["eval_rewards/margins"]).toBeTypeOf("number");
    expect(result.bestValidLoss).toBeLessThan(result.baseValidLoss);
    const positive = result.bestMargins.filter((m) => m > 0).length;
    console.log(
      `DPO stories260k: ${result.steps} steps, valid loss ${result.baseValidLoss.toFixed(4)} -> ${result.bestValidLoss.toFixed(4)} (step ${result.bestStep}), ` +
        `margins > 0 on ${positive}/${result.bestMargins.length}, mean margin ${(result.bestMargins.reduce((a, b) => a + b, 0) / result.bestMargins.length).toFixed(3)}, ` +
        `eval accuracy ${result.bestRewards["eval_rewards/accuracies"]}, last train rewards ${JSON.stringify(progress.at(-1)!.metrics)}`,
    );
    expect(positive).toBeGreaterThanOrEqual(Math.ceil(0.9 * result.bestMargins.length));

    // The job's report (trainer/dpo/report.ts): the served adapter's greedy answers continue "NAME was very"
    // (where the pair's answers part) in the assistant's turn, beside the base model's.
    const report = (await reportPreferences({ modelDir, cacheDir, result }))!;
    expect(report.pairs.map((r) => r.margin)).toEqual(result.bestMargins);
    expect(report.pairs.map((r) => r.chosen)).toEqual(validation.map((e) => e.chosen));
    expect(report.preferredShare).toBe(positive / result.bestMargins.length);
    expect(report).toMatchObject({ method: "dpo", validationPairs: 8, answeredPairs: 8, bestStep: result.bestStep, reference: { loss: result.baseValidLoss }, adapter: { loss: result.bestValidLoss } });
    console.log(describePreferenceResult(report));
    for (const r of report.pairs) console.log(`${r.prompt} -> ${JSON.stringify(r.adapter)} (base: ${JSON.stringify(r.base)}; moved ${r.moved})`);
    const count = (key: "adapter" | "base", word: string) => report.pairs.filter((r) => r[key]!.includes(word)).length;
    for (const r of report.pairs) expect(r.adapter).toMatch(/^\S+ was very/);
    expect(count("adapter", "happy")).toBeGreaterThan(count("base", "happy"));
    expect(count("adapter", "happy")).toBeGreaterThanOrEqual(Math.ceil(0.9 * report.pairs.length));
    expect(count("adapter", "sad")).toBeLessThanOrEqual(count("base", "sad"));
    // The report's own reading of the same answers agrees: leaning and moves toward the chosen.
    expect(report.adapterLeansChosen).toBeGreaterThanOrEqual(Math.ceil(0.9 * report.pairs.length));
    expect(report.adapterLeansChosen).toBeGreaterThan(report.baseLeansChosen);
    expect(report.movedTowardChosen).toBeGreaterThan(report.movedTowardRejected);
    expect(report.movedTowardChosen).toBe(report.pairs.filter((r) => r.moved === "chosen").length);
  }, 300_000);

  it("is deterministic, resumes from a state checkpoint to the same bytes, and its fingerprint covers the method", async () => {
    const short = request({ maxSteps: 6, evalEvery: 3 });
    const states: TrainCheckpoint[] = [];
    const whole = await trainDpo(short, { onCheckpoint: (s) => void states.push(s) });
    expect(states.map((s) => s.step)).toEqual([3, 6]);
    const again = await trainDpo(short);
    expect(Buffer.from(again.adapter.model).equals(Buffer.from(whole.adapter.model))).toBe(true);
    const resumed = await trainDpo({ ...short, resume: states[0] });
    expect(resumed.steps).toBe(6);
    expect(Buffer.from(resumed.adapter.model).equals(Buffer.from(whole.adapter.model))).toBe(true);
    expect(dpoFingerprint({ ...short, dpo: { beta: 0.2 } })).not.toBe(states[0]!.fingerprint);
    expect(dpoFingerprint({ ...short, dpo: { beta: 0.1, lossType: "ipo" } })).not.toBe(states[0]!.fingerprint);
    await expect(trainDpo({ ...short, dpo: { beta: 0.2 }, resume: states[0] })).rejects.toThrow(/another run/);
  }, 300_000);

  it("continuing an adapter, the reference is that adapter frozen: step 0 has loss log 2 and zero margins", async () => {
    const config = await loadDecoderConfig(modelDir);
    const params = initLoraParams(config, { targets: ["q_proj", "v_proj"], rank: 4, alpha: 8 }, 3);
    params.modules.forEach((m, i) => m.b.forEach((_, k) => (m.b[k] = 0.05 * Math.sin(k + i))));
    const adapter = exportPeftAdapter(params, { baseModel: "stories260k" });
    const continued = await trainDpo({ ...request({ maxSteps: 2, evalEvery: 1, rank: undefined, alpha: undefined }), initialAdapter: adapter });
    // Were the reference the base model, the adapter's nonzero B would give nonzero margins at step 0.
    expect(continued.baseValidLoss).toBeCloseTo(Math.log(2), 6);
    expect(Math.abs(continued.baseRewards["eval_rewards/margins"]!)).toBeLessThan(1e-9);
    expect(continued.steps).toBe(2);
    const fromBase = await trainDpo(request({ maxSteps: 2, evalEvery: 1, targetModules: ["q_proj", "v_proj"], rank: 4, alpha: 8 }));
    expect(Buffer.from(fromBase.adapter.model).equals(Buffer.from(continued.adapter.model))).toBe(false);
  }, 300_000);
});
