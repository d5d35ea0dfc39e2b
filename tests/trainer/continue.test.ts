/**
 * Continuing an adapter (trainer/continue.ts): the trained adapter's PEFT files read back as the
 * starting parameters exactly; trainLora started from it evaluates that adapter's validation loss at
 * step 0 (not the base's) and keeps its r, alpha and targets; conflicting hyperparameters and adapters
 * this trainer could not have made are refused. Jobs: `BASE:NAME` / `NAME@VERSION` are pinned to the
 * adapter's id at submit, the runner hands its files to the loop and publishes the next version.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PlaneError } from "../../ports/errors.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { parseTrainingData, type TrainingExample } from "../../services/files/training-data.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { continuedHyperparameters, startingParams } from "../../trainer/continue.ts";
import { exportPeftAdapter } from "../../trainer/export.ts";
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import { trainLora, type TrainRequest, type TrainResult } from "../../trainer/train.ts";
import type { TrainFn } from "../../trainer/train-api.ts";
import { STORIES } from "../helpers/adapters.ts";
import { findModel } from "../helpers/model-path.ts";
import { refused } from "../helpers/refused.ts";
import { BASE, openTestJobs, type TestJobs } from "./jobs/helpers.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");
const config = (files: TrainResult["adapter"]) => JSON.parse(new TextDecoder().decode(files.config)) as Record<string, unknown>;

describe("continuing a trained adapter on stories260k", () => {
  let modelDir: string;
  let cacheDir: string;
  let examples: TrainingExample[];
  let first: TrainResult;
  const request = (overrides: Partial<TrainRequest> = {}, h: TrainRequest["hyperparameters"] = {}): TrainRequest => ({
    modelDir,
    training: examples,
    validation: examples,
    seed: 1,
    cacheDir,
    threads: 2,
    hyperparameters: { learningRate: 1e-2, maxSteps: 12, epochs: 100, batchSize: 4, evalEvery: 4, ...h },
    ...overrides,
  });
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    cacheDir = await mkdtemp(join(tmpdir(), "sy-train-continue-"));
    examples = parseTrainingData(readFileSync(FIXTURE, "utf8")).examples;
    first = await trainLora(request({}, { rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "down_proj"] }));
    expect(first.bestValidLoss).toBeLessThan(0.9 * first.baseValidLoss);
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));

  it("reads the adapter back as exactly the parameters it was exported from", async () => {
    const params = startingParams(first.adapter, await loadDecoderConfig(modelDir));
    expect(params.spec).toMatchObject({ rank: 4, alpha: 8, targets: ["q_proj", "v_proj", "down_proj"], useRslora: false });
    expect(Buffer.from(exportPeftAdapter(params, { baseModel: "stories260k" }).model).equals(Buffer.from(first.adapter.model))).toBe(true);
  });

  it("step 0's validation loss is the continued adapter's, not the base's; r, alpha and targets are the adapter's", async () => {
    const next = await trainLora(request({ initialAdapter: first.adapter }, { maxSteps: 2, evalEvery: 1 }));
    expect(next.startValidLoss).toBeCloseTo(first.bestValidLoss, 5);
    expect(next.baseValidLoss).toBeCloseTo(first.baseValidLoss, 5);
    expect(next.startValidLoss!).toBeLessThan(0.9 * next.baseValidLoss);
    expect(next.bestValidLoss).toBeLessThanOrEqual(next.startValidLoss!);
    expect(config(next.adapter)).toMatchObject({ r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] });
  });

  it("refuses hyperparameters that contradict the adapter", async () => {
    const e = await refused(trainLora(request({ initialAdapter: first.adapter }, { rank: 8 })), "invalid_request");
    expect(e).toMatchObject({ code: "hyperparameter_conflict", param: "switchyard.r" });
    await refused(trainLora(request({ initialAdapter: first.adapter }, { targetModules: ["q_proj"] })), "invalid_request");
  });
});

describe("what continues", () => {
  it("only an adapter with one rank and alpha on every layer of its targets", () => {
    const patterned = randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj", "v_proj"], rankPattern: { q_proj: 2 } }).files;
    expect(() => startingParams(patterned, STORIES)).toThrow(/cannot be continued.*rank_pattern/);
    const plain = randomPeftAdapter(STORIES, { rank: 4, alpha: 16, targets: ["q_proj", "v_proj"] }).files;
    expect(startingParams(plain, STORIES).scale).toBe(4);
    expect(continuedHyperparameters({ rank: 4, targetModules: ["v_proj", "q_proj"] }, { rank: 4, alpha: 16, targets: ["q_proj", "v_proj"] })).toEqual({ rank: 4, alpha: 16, targetModules: ["q_proj", "v_proj"] });
    expect(() => continuedHyperparameters({ alpha: 8 }, { rank: 4, alpha: 16, targets: ["q_proj"] })).toThrow(PlaneError);
  });
});

describe("jobs that continue an adapter", () => {
  let t: TestJobs;
  beforeEach(async () => {
    t = await openTestJobs();
  });
  afterEach(async () => t.close());
  const ACME = "t_acme";
  const uploadAdapter = (tenantId: string, name: string) =>
    t.catalog.upload({ tenantId, name, source: randomPeftAdapter(STORIES, { rank: 4, alpha: 8, targets: ["q_proj", "v_proj"], seed: 3 }).files });

  it("are pinned to the adapter's id, get its files, and publish its next version", async () => {
    const bot = await uploadAdapter(ACME, "bot");
    const file = await t.upload(ACME);
    const byBase = await t.trainer.submit({ tenantId: ACME, model: `${BASE}:bot`, trainingFile: file, hyperparameters: { rank: 4 } });
    expect(byBase.model).toBe(`${BASE}:${bot.id}`);
    expect((await t.trainer.submit({ tenantId: ACME, model: "bot@1", trainingFile: file })).model).toBe(`${BASE}:${bot.id}`);
    const seen: TrainRequest[] = [];
    const inner = fakeTrain();
    const spy: TrainFn = (request, hooks) => (seen.push(request), inner(request, { ...hooks }));
    expect(await t.drain(spy)).toEqual(["succeeded", "succeeded"]);
    const content = await t.catalog.content(bot.id, { tenantId: ACME });
    expect(seen.map((r) => Buffer.from(r.initialAdapter!.model).equals(Buffer.from(content.model)))).toEqual([true, true]);
    const done = await t.trainer.get(ACME, byBase.id);
    expect(done.fineTunedModel).toMatch(/^bot@[23]$/);
    const events = (await t.trainer.events(ACME, byBase.id, { limit: 100 })).data.map((e) => e.message);
    expect(events).toContain(`Continuing adapter bot@1 (${bot.id})`);
  });

  it("refuses a conflicting rank (400), an unknown or another tenant's adapter (404)", async () => {
    await uploadAdapter(ACME, "bot");
    const theirs = await uploadAdapter("t_globex", "secret");
    const file = await t.upload(ACME);
    const conflict = await refused(t.trainer.submit({ tenantId: ACME, model: `${BASE}:bot`, trainingFile: file, hyperparameters: { rank: 8 } }), "invalid_request");
    expect(conflict).toMatchObject({ code: "hyperparameter_conflict", param: "switchyard.r" });
    expect(await refused(t.trainer.submit({ tenantId: ACME, model: `${BASE}:nope`, trainingFile: file }), "not_found")).toMatchObject({ code: "model_not_found", param: "model" });
    await refused(t.trainer.submit({ tenantId: ACME, model: `${BASE}:${theirs.id}`, trainingFile: file }), "not_found");
    expect(await refused(t.trainer.submit({ tenantId: ACME, model: "secret", trainingFile: file }), "invalid_request")).toMatchObject({ code: "model_not_available" });
  });

  it("fails with model_not_found when the adapter is deleted before the job runs", async () => {
    const bot = await uploadAdapter(ACME, "bot");
    const job = await t.trainer.submit({ tenantId: ACME, model: "bot", trainingFile: await t.upload(ACME) });
    await t.catalog.delete(bot.id, { tenantId: ACME });
    expect(await t.drain()).toEqual(["failed"]);
    expect((await t.trainer.get(ACME, job.id)).error).toMatchObject({ code: "model_not_found", param: "model" });
  });
});
