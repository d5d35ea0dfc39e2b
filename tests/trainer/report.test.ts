/**
 * The job's result report (trainer/report.ts, trainer/report-scores.ts):
 *   - on constructed inputs: perplexity = exp(loss), ROUGE-L F and exact match are the metrics module's,
 *     averaged per model, and each column scores its own model's answers against the same references;
 *   - the prompt of an example: the messages before its last trained assistant turn;
 *   - on stories260k with the serving engine: an identity adapter (B = 0) answers exactly as the base
 *     model, a random one differently; the cap on answered examples; no validation set, no report.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { exactMatch, rouge } from "../../services/evaluation/metrics.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../services/model/config.ts";
import { exportPeftAdapter } from "../../trainer/export.ts";
import { initLoraParams } from "../../trainer/lora-params.ts";
import { answerPrompt, buildReport, describeResult, reportTraining, validationScores } from "../../trainer/report.ts";
import type { ChatExample, TrainResult } from "../../trainer/train-api.ts";
import { findModel } from "../helpers/model-path.ts";

const example = (messages: ChatExample["messages"], line = 1): ChatExample => ({ line, messages });

describe("validationScores and buildReport", () => {
  it("perplexity is exp(loss); ROUGE-L F and exact match are the metrics module's, averaged", () => {
    const pairs = [
      ["The red dog is Bob", "the red dog is bob."],
      ["Bob is red", "The red dog is Bob."],
    ] as const;
    const s = validationScores({ loss: 1.5, tokenAccuracy: 0.25 }, pairs);
    expect(s.perplexity).toBe(Math.exp(1.5));
    expect(s).toMatchObject({ loss: 1.5, tokenAccuracy: 0.25 });
    // Worked by hand: the first is the reference (normalised); the second shares one token in order out of 3 and 5 (P 1/3, R 1/5, F 1/4).
    expect(s.exactMatch).toBe(0.5);
    expect(s.rougeL).toBeCloseTo((1 + 0.25) / 2, 12);
    expect(s.rougeL).toBe((rouge(pairs[0][0], pairs[0][1]).rougeL.fmeasure + rouge(pairs[1][0], pairs[1][1]).rougeL.fmeasure) / 2);
    expect(s.exactMatch).toBe((exactMatch(pairs[0][0], pairs[0][1]) + exactMatch(pairs[1][0], pairs[1][1])) / 2);
  });

  it("pairs each model's evaluation with its own answers, against the same references", () => {
    const answers = [
      { reference: "In the big box.", base: "Whiskers is a big ball.", adapter: "In the big box." },
      { reference: "Three birds sing.", base: "Three cats sing.", adapter: "Three birds sing" },
      { reference: "Ben sleeps at noon.", base: "Anna, I'm sorry.", adapter: "Ben sleeps at night." },
    ];
    const r = buildReport({ validationExamples: 5, bestStep: 40, base: { loss: 4, tokenAccuracy: 0.1 }, adapter: { loss: 0.5, tokenAccuracy: 0.9 }, answers });
    expect(r).toMatchObject({ validationExamples: 5, answeredExamples: 3, bestStep: 40 });
    expect(r.base).toEqual(validationScores({ loss: 4, tokenAccuracy: 0.1 }, answers.map((a) => [a.base, a.reference])));
    expect(r.adapter).toEqual(validationScores({ loss: 0.5, tokenAccuracy: 0.9 }, answers.map((a) => [a.adapter, a.reference])));
    expect(r.adapter.exactMatch).toBe(2 / 3);
    expect(r.base.exactMatch).toBe(0);
    expect(r.adapter.rougeL!).toBeGreaterThan(r.base.rougeL!);
    expect(describeResult(r)).toBe(
      "Validation, base model -> adapter (step 40) over 5 example(s) (answers: 3 of them): loss 4.0000 -> 0.5000, perplexity 54.60 -> 1.65, token accuracy 0.100 -> 0.900, " +
        `ROUGE-L ${r.base.rougeL!.toFixed(3)} -> ${r.adapter.rougeL!.toFixed(3)}, exact match 0.000 -> 0.667`,
    );
  });

  it("has no answer scores when no example was answered", () => {
    const r = buildReport({ validationExamples: 2, bestStep: 0, base: { loss: 2, tokenAccuracy: 0 }, adapter: { loss: 2, tokenAccuracy: 0 }, answers: [] });
    expect(r.base).toMatchObject({ rougeL: null, exactMatch: null });
    expect(describeResult(r)).toContain("exact match n/a -> n/a");
  });
});

describe("answerPrompt", () => {
  it("is the messages before the last trained assistant turn, whose text is the reference", () => {
    const chat = example([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello." },
      { role: "user", content: "Name?" },
      { role: "assistant", content: "Bob." },
      { role: "user", content: "Again?" },
      { role: "assistant", content: "Not trained.", weight: 0 },
    ]);
    expect(answerPrompt(chat)).toEqual({
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Name?" },
      ],
      reference: "Bob.",
    });
    expect(answerPrompt(example([{ role: "user", content: "Hi" }]))).toBeUndefined();
  });
});

describe("reportTraining on stories260k through the serving engine", () => {
  let modelDir: string;
  let cacheDir: string;
  let config: DecoderConfig;
  const validation = [
    example([{ role: "user", content: "What is the name of the red dog?" }, { role: "assistant", content: "The red dog is Bob." }], 1),
    example([{ role: "user", content: "Where does Lily keep her ball?" }, { role: "assistant", content: "In the big box." }], 2),
    example([{ role: "user", content: "When does Ben sleep?" }, { role: "assistant", content: "Ben sleeps at noon." }], 3),
  ];
  const result = (adapter: TrainResult["adapter"], examples = validation): TrainResult => ({
    adapter,
    bestStep: 7,
    steps: 10,
    trainedTokens: 100,
    baseValidLoss: 4,
    bestValidLoss: 1,
    baseEvaluation: { loss: 4, tokenAccuracy: 0.2 },
    bestEvaluation: { loss: 1, tokenAccuracy: 0.7 },
    validation: examples,
    stoppedEarly: false,
    cancelled: false,
  });
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    cacheDir = await mkdtemp(join(tmpdir(), "sy-report-"));
    config = await loadDecoderConfig(modelDir);
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));

  it("an identity adapter (B = 0) scores as the base model; the loop's evaluations pass through", async () => {
    const identity = exportPeftAdapter(initLoraParams(config, { targets: ["q_proj", "v_proj"], rank: 4, alpha: 8 }, 1), { baseModel: "stories260k" });
    const r = (await reportTraining({ modelDir, cacheDir, result: result(identity) }))!;
    expect(r).toMatchObject({ validationExamples: 3, answeredExamples: 3, bestStep: 7 });
    expect(r.base).toMatchObject({ loss: 4, perplexity: Math.exp(4), tokenAccuracy: 0.2 });
    expect(r.adapter).toMatchObject({ loss: 1, perplexity: Math.exp(1), tokenAccuracy: 0.7 });
    expect(r.adapter.rougeL).toBe(r.base.rougeL);
    expect(r.adapter.exactMatch).toBe(r.base.exactMatch);
    expect(r.base.exactMatch).toBe(0); // the base model knows none of these made-up facts
  }, 60_000);

  it("a random adapter answers differently; at most maxExamples are answered; no validation set, no report", async () => {
    const random = randomPeftAdapter(config, { rank: 4, amplitude: 0.5, seed: 3 }).files;
    const r = (await reportTraining({ modelDir, cacheDir, result: result(random) }, { maxExamples: 2 }))!;
    expect(r).toMatchObject({ validationExamples: 3, answeredExamples: 2 });
    expect(r.adapter.rougeL).not.toBe(r.base.rougeL);
    expect(await reportTraining({ modelDir, cacheDir, result: result(random, []) })).toBeUndefined();
  }, 60_000);
});
