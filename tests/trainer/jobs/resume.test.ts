/**
 * The runner's crash recovery and servable checkpoints, with a stand-in training loop that drives the
 * hooks (the real loop's resume is tests/trainer/checkpoint.test.ts; the real kill -9 is
 * tests/hosts/node/trainer-resume.test.ts): a handed-back job resumes from its state checkpoint and the
 * folder goes when it is done; a checkpoint of other settings or an unreadable one is not resumed; every
 * epoch is published once, the best last unless it is the newest; after success only the last 3 epoch
 * versions and the best (one of them, or its own version) are left (catalog and checkpoint rows); an idle worker deletes the folders of
 * finished jobs only.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { CheckpointDir, type TrainCheckpoint } from "../../../trainer/checkpoint.ts";
import { fakeTrain } from "../../../trainer/jobs/fake-train.ts";
import { runJob } from "../../../trainer/jobs/runner.ts";
import { TrainerWorker } from "../../../trainer/jobs/worker.ts";
import type { TrainFn, TrainRequest, TrainResult } from "../../../trainer/train-api.ts";
import { trainFingerprint } from "../../../trainer/train.ts";
import { STORIES } from "../../helpers/adapters.ts";
import { BASE, openTestJobs, type TestJobs } from "./helpers.ts";

let t: TestJobs;
beforeEach(async () => {
  t = await openTestJobs();
});
afterEach(async () => {
  await t.close();
});

const ACME = "t_acme";
const messages = async (jobId: string) => (await t.trainer.events(ACME, jobId, { limit: 100 })).data.map((e) => e.message).reverse();

function state(step: number, fingerprint: string): TrainCheckpoint {
  const p = () => [new Float32Array([step, 1]), new Float32Array([2, 3])];
  return {
    fingerprint,
    step,
    epoch: 1,
    stepInEpoch: 0,
    trainedTokens: 10 * step,
    modules: ["model.layers.0.self_attn.q_proj"],
    params: p(),
    optimizer: { step, m: p(), v: p() },
    best: { base: { loss: 3, tokenAccuracy: 0.25 }, best: { loss: 2, tokenAccuracy: 0.5 }, step, worse: 0, stopped: false, params: p() },
    history: [{ step, validLoss: 2, tokenAccuracy: 0.5, trainLoss: 2.5 }],
  };
}

const adapter = (seed: number) => randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj"], seed, amplitude: 0.01 }).files;

describe("runJob with state checkpoints", () => {
  it("resumes a handed-back job from its checkpoint and deletes the folder when the job is done", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), hyperparameters: { maxSteps: 4 } });
    const checkpointDir = join(t.dir, "training");
    const queue = t.queue("w1");
    const stop = new AbortController();
    const crash: TrainFn = async (request, hooks = {}) => {
      await hooks.onCheckpoint?.(state(2, trainFingerprint(request)));
      stop.abort(new Error("shutting down"));
      return { cancelled: true, trainedTokens: 20 } as TrainResult;
    };
    expect(await runJob((await queue.claim())!, { ...t.deps(queue, crash), checkpointDir }, stop.signal)).toBe("aborted");
    await queue.release(job.id);
    expect(existsSync(join(checkpointDir, job.id, "step-00000002.safetensors"))).toBe(true);

    let seen: TrainRequest | undefined;
    const inner = fakeTrain();
    const spy: TrainFn = (request, hooks) => ((seen = request), inner(request, hooks));
    const again = t.queue("w2");
    expect(await runJob((await again.claim())!, { ...t.deps(again, spy), checkpointDir })).toBe("succeeded");
    expect(seen!.resume).toMatchObject({ step: 2, trainedTokens: 20 });
    expect(await messages(job.id)).toContain("Resumed from step 2");
    expect(existsSync(join(checkpointDir, job.id))).toBe(false);
  });

  it("does not resume a checkpoint made with other settings, or one that does not read back", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    const checkpointDir = join(t.dir, "training");
    const dir = new CheckpointDir(join(checkpointDir, job.id), job.id);
    dir.write(state(3, "0".repeat(64)));
    const bad = dir.write(state(6, "0".repeat(64)));
    const { truncateSync } = await import("node:fs");
    truncateSync(bad, 200);
    let seen: TrainRequest | undefined;
    const inner = fakeTrain();
    const queue = t.queue("w");
    expect(await runJob((await queue.claim())!, { ...t.deps(queue, (r, h) => ((seen = r), inner(r, h))), checkpointDir })).toBe("succeeded");
    expect(seen!.resume).toBeUndefined();
    const log = await messages(job.id);
    expect(log).toContainEqual(expect.stringMatching(/^Ignored an unreadable training checkpoint: step-00000006\.safetensors \(checkpoint: /));
    expect(log).toContain("The checkpoint at step 3 was made with other data or hyperparameters; training restarts from the beginning");
    expect(log.some((m) => m.startsWith("Resumed"))).toBe(false);
  });
});

describe("servable checkpoints", () => {
  const epochs = (bestStep: number): TrainFn => async (_request, hooks = {}) => {
    for (const step of [2, 2, 4]) await hooks.onEpochEnd?.({ epoch: step / 2, step, trainLoss: 1 / step, validLoss: 2 / step, tokenAccuracy: 0.5, adapter: adapter(step) });
    return { adapter: adapter(100 + bestStep), bestStep, steps: 4, trainedTokens: 40, baseValidLoss: 3, bestValidLoss: 2 / bestStep, baseEvaluation: { loss: 3, tokenAccuracy: 0.25 }, bestEvaluation: { loss: 2 / bestStep, tokenAccuracy: 0.5 }, validation: [], stoppedEarly: false, cancelled: false };
  };

  it("publishes each epoch once, and reuses the last one when it is the best", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), suffix: "bot" });
    expect(await t.drain(epochs(4))).toEqual(["succeeded"]);
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ status: "succeeded", fineTunedModel: "bot@2" });
    const rows = (await t.trainer.checkpoints(ACME, job.id)).data;
    expect(rows.map((c) => [c.step, c.fineTunedModel])).toEqual([
      [4, "bot@2"],
      [2, "bot@1"],
    ]);
    expect(rows[1]!.metrics).toEqual({ step: 2, train_loss: 0.5, valid_loss: 1, full_valid_loss: 1, valid_mean_token_accuracy: 0.5, full_valid_mean_token_accuracy: 0.5 });
    expect(await messages(job.id)).toContain("Checkpoint created at step 2 (epoch 1): bot@1");
    expect((await t.catalog.resolve("bot", ACME)).adapter!.version).toBe(2);
  });

  it("records the version an attempt that died between upload and checkpoint row published, instead of publishing it twice", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), suffix: "bot" });
    // The earlier attempt's upload of the step-2 epoch, which it did not live to record.
    await t.catalog.upload({ tenantId: ACME, name: "bot", source: adapter(2) });
    expect(await t.drain(epochs(4))).toEqual(["succeeded"]);
    expect((await t.trainer.checkpoints(ACME, job.id)).data.map((c) => [c.step, c.fineTunedModel])).toEqual([
      [4, "bot@2"],
      [2, "bot@1"],
    ]);
    expect((await t.catalog.resolve("bot", ACME)).adapter!.version).toBe(2);

    // Other bytes under the name (another upload) are not taken for the epoch's.
    const other = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), suffix: "pal" });
    await t.catalog.upload({ tenantId: ACME, name: "pal", source: adapter(99) });
    expect(await t.drain(epochs(4))).toEqual(["succeeded"]);
    expect((await t.trainer.checkpoints(ACME, other.id)).data.map((c) => c.fineTunedModel)).toEqual(["pal@3", "pal@2"]);
  });

  it("publishes an earlier best again last, so the bare name resolves to it", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), suffix: "bot" });
    expect(await t.drain(epochs(2))).toEqual(["succeeded"]);
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ fineTunedModel: "bot@3" });
    const rows = (await t.trainer.checkpoints(ACME, job.id)).data.map((c) => [c.fineTunedModel, c.step]);
    expect(rows.sort()).toEqual([
      ["bot@1", 2],
      ["bot@2", 4],
      ["bot@3", 2],
    ]);
    expect((await t.catalog.resolve("bot", ACME)).adapter!.version).toBe(3);
  });
});

describe("pruning old epoch checkpoints", () => {
  const sixEpochs = (bestStep: number): TrainFn => async (_request, hooks = {}) => {
    for (let epoch = 1; epoch <= 6; epoch++) await hooks.onEpochEnd?.({ epoch, step: 10 * epoch, trainLoss: 1 / epoch, adapter: adapter(epoch) });
    return { adapter: adapter(100), bestStep, steps: 60, trainedTokens: 600, baseValidLoss: 3, bestValidLoss: 1, baseEvaluation: { loss: 3, tokenAccuracy: 0.25 }, bestEvaluation: { loss: 1, tokenAccuracy: 0.5 }, validation: [], stoppedEarly: false, cancelled: false };
  };
  const versions = async () => (await t.catalog.list({ tenantId: ACME })).filter((a) => a.name === "bot").map((a) => a.version).sort((a, b) => a - b);

  it("keeps the last 3 epoch versions and an earlier best, deleting the rest from the catalog and the checkpoint list", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), suffix: "bot" });
    expect(await t.drain(sixEpochs(20))).toEqual(["succeeded"]);
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ fineTunedModel: "bot@7" });
    expect((await t.trainer.checkpoints(ACME, job.id)).data.map((c) => [c.step, c.fineTunedModel])).toEqual([
      [60, "bot@6"],
      [50, "bot@5"],
      [40, "bot@4"],
      [20, "bot@7"],
    ]);
    expect(await versions()).toEqual([4, 5, 6, 7]);
    await expect(t.catalog.resolve("bot@1", ACME)).rejects.toMatchObject({ kind: "not_found" });
    expect((await t.catalog.resolve("bot", ACME)).adapter!.version).toBe(7);
    expect(await messages(job.id)).toContain("Deleted 3 older epoch checkpoint(s); kept the last 3 and the best");
  });

  it("keeps the last epoch's version when it is the best, and tolerates a version the tenant deleted", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME), suffix: "bot" });
    const train = sixEpochs(60);
    const deleting: TrainFn = async (request, hooks = {}) =>
      train(request, {
        ...hooks,
        onEpochEnd: async (e) => {
          await hooks.onEpochEnd?.(e);
          if (e.epoch === 2) await t.catalog.delete((await t.catalog.resolve("bot@1", ACME)).adapter!.id, { tenantId: ACME });
        },
      });
    expect(await t.drain(deleting)).toEqual(["succeeded"]);
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ fineTunedModel: "bot@6" });
    expect((await t.trainer.checkpoints(ACME, job.id)).data.map((c) => c.fineTunedModel)).toEqual(["bot@6", "bot@5", "bot@4"]);
    expect(await versions()).toEqual([4, 5, 6]);
    expect((await messages(job.id)).filter((m) => m.includes("could not be deleted"))).toEqual([]);
  });
});

describe("TrainerWorker with state checkpoints", () => {
  it("when idle, deletes the checkpoint folders of finished or unknown jobs, not of live ones", async () => {
    const file = await t.upload(ACME);
    const cancelled = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file });
    await t.trainer.cancel(ACME, cancelled.id);
    const checkpointDir = join(t.dir, "training");
    for (const id of [cancelled.id, "ftjob_gone"]) mkdirSync(join(checkpointDir, id), { recursive: true });
    const queue = t.queue("w");
    const worker = new TrainerWorker({ ...t.deps(queue), checkpointDir, pollMs: 20 });
    worker.start();
    const deadline = Date.now() + 5000;
    while (existsSync(join(checkpointDir, cancelled.id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await worker.stop();
    expect(existsSync(join(checkpointDir, cancelled.id))).toBe(false);
    expect(existsSync(join(checkpointDir, "ftjob_gone"))).toBe(false);
    expect(await queue.finishedAmong([cancelled.id, "ftjob_gone"])).toEqual([cancelled.id, "ftjob_gone"]);
    const queued = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file });
    expect(await queue.finishedAmong([queued.id])).toEqual([]);
  });
});
