/** The job runner with a stand-in training loop: files in, hyperparameters through, metrics out, the adapter published, the result reported; cancel, failure, lost lease. */
import type { FineTuningResult } from "../../../ports/trainer.ts";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fakeTrain } from "../../../trainer/jobs/fake-train.ts";
import { BASE_LEARNING_RATE, defaultAdapterName, runJob } from "../../../trainer/jobs/runner.ts";
import { describeResult, reportTraining, type ReportFn } from "../../../trainer/report.ts";
import type { TrainFn, TrainRequest } from "../../../trainer/train-api.ts";
import { BASE, openTestJobs, type TestJobs } from "./helpers.ts";

let t: TestJobs;
beforeEach(async () => {
  t = await openTestJobs();
});
afterEach(async () => {
  await t.close();
});

const ACME = "t_acme";
const events = async (jobId: string) => (await t.trainer.events(ACME, jobId, { limit: 100 })).data;

describe("runJob", () => {
  it("trains on the parsed files with the job's settings and publishes the tenant's adapter", async () => {
    const trainingFile = await t.upload(ACME, 4);
    const validationFile = await t.upload(ACME, 2);
    const job = await t.trainer.submit({
      tenantId: ACME,
      model: BASE,
      trainingFile,
      validationFile,
      seed: 42,
      hyperparameters: { nEpochs: 3, batchSize: 2, learningRateMultiplier: 0.5, rank: 8, alpha: 16, dropout: 0.1, targetModules: ["q_proj", "o_proj"], maxSteps: 4, patience: 2 },
    });
    let seen: TrainRequest | undefined;
    const inner = fakeTrain();
    const spy: TrainFn = (request, hooks) => ((seen = request), inner(request, hooks));
    expect(await t.drain(spy)).toEqual(["succeeded"]);

    expect(seen!.training.map((e) => e.line)).toEqual([1, 2, 3, 4]);
    expect(seen!.validation).toHaveLength(2);
    expect(seen!.seed).toBe(42);
    expect(seen!.hyperparameters).toEqual({ epochs: 3, batchSize: 2, learningRate: 0.5 * BASE_LEARNING_RATE, rank: 8, alpha: 16, dropout: 0.1, targetModules: ["q_proj", "o_proj"], maxSteps: 4, patience: 2 });
    expect(seen!.initialAdapter).toBeUndefined();

    const done = await t.trainer.get(ACME, job.id);
    const name = defaultAdapterName(job.id);
    expect(done).toMatchObject({ status: "succeeded", fineTunedModel: `${name}@1`, estimatedFinish: null });
    const adapter = (await t.catalog.resolve(done.fineTunedModel!, ACME)).adapter!;
    expect(adapter).toMatchObject({ tenantId: ACME, name, version: 1, rank: 8, alpha: 16 });
    expect(adapter.targetModules.sort()).toEqual(["o_proj", "q_proj"]);

    const metrics = (await events(job.id)).filter((e) => e.type === "metrics").reverse();
    expect(metrics.map((e) => e.data!.step)).toEqual([1, 2, 3, 4]);
    expect(metrics[0]!.data).toEqual({ step: 1, total_steps: 4, train_loss: 3, valid_loss: 3.1, valid_mean_token_accuracy: 0.5, learning_rate: 0.5 * BASE_LEARNING_RATE, grad_norm: 1, tokens_per_second: 1000 });
    expect(metrics[0]!.message).toBe("Step 1/4: training loss=3.0000, validation loss=3.1000");
    const [checkpoint] = (await t.trainer.checkpoints(ACME, job.id)).data;
    expect(checkpoint).toMatchObject({ step: 4, fineTunedModel: `${name}@1`, metrics: { step: 4, train_loss: 0.75, full_valid_loss: 0.85 } });
  });

  it("a second job with the same suffix publishes the adapter's next version", async () => {
    const file = await t.upload(ACME);
    await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file, suffix: "bot" });
    await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file, suffix: "bot" });
    await t.drain();
    expect((await t.trainer.list(ACME)).data.map((j) => j.fineTunedModel)).toEqual(["bot@2", "bot@1"]);
  });

  it("reports base model vs adapter on the validation set into the job's result, summarised just before the completion message", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME, 4), validationFile: await t.upload(ACME, 3), hyperparameters: { maxSteps: 2 } });
    let given: Parameters<ReportFn>[0] | undefined;
    const report: ReportFn = (input) => ((given = input), reportTraining(input));
    expect(await t.drain(fakeTrain(), report)).toEqual(["succeeded"]);
    expect(given).toMatchObject({ modelDir: t.deps(t.queue("x")).modelDir, cacheDir: join(t.dir, "compiled") });
    expect(given!.result.validation).toHaveLength(3);

    const done = await t.trainer.get(ACME, job.id);
    // The stand-in's evaluations (base 3.1, best 3/steps + 0.1), the served adapter's answers to the 3 validation chats.
    expect(done.result).toMatchObject({ validationExamples: 3, answeredExamples: 3, bestStep: 2, base: { loss: 3.1, perplexity: Math.exp(3.1) }, adapter: { loss: 1.6, perplexity: Math.exp(1.6) } });
    const [completed, summary] = await events(job.id);
    expect(completed!.message).toMatch(/successfully completed/);
    expect(summary).toMatchObject({ type: "message", level: "info", message: describeResult(done.result as FineTuningResult) });
  });

  it("says an early stop in one event with its step and the best step, and publishes the best step's adapter", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME, 4), validationFile: await t.upload(ACME, 2), hyperparameters: { maxSteps: 8 } });
    expect(await t.drain(fakeTrain({ earlyStop: { bestStep: 2, atStep: 4 } }))).toEqual(["succeeded"]);
    const all = await events(job.id);
    expect(all.filter((e) => e.type === "metrics").map((e) => e.data!.step)).toEqual([4, 3, 2, 1]);
    const stop = all.filter((e) => e.data?.early_stopping_step !== undefined);
    expect(stop).toHaveLength(1);
    expect(stop[0]).toMatchObject({ type: "message", message: "Stopped early after step 4: the validation loss stopped improving (best at step 2)", data: { early_stopping_step: 4, best_step: 2 } });
    const done = await t.trainer.get(ACME, job.id);
    const [best] = (await t.trainer.checkpoints(ACME, job.id)).data;
    expect(best).toMatchObject({ step: 2, fineTunedModel: done.fineTunedModel });
  });

  it("a report that fails leaves the job succeeded, without a result, with a warning", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    expect(await t.drain(fakeTrain(), () => Promise.reject(new Error("engine out of memory")))).toEqual(["succeeded"]);
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ status: "succeeded", result: null });
    expect((await events(job.id)).find((e) => e.level === "warn")!.message).toBe("The result report failed: engine out of memory");
  });

  it("stops within one step of a cancel and publishes nothing", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    const queue = t.queue("w");
    const claimed = (await queue.claim())!;
    let cancelledAt = 0;
    let steps = 0;
    const train: TrainFn = fakeTrain({ steps: 50 });
    const run = runJob(
      claimed,
      t.deps(queue, (request, hooks) =>
        train(request, {
          ...hooks,
          onStep: async (p) => {
            steps = p.step;
            await hooks?.onStep?.(p);
            if (p.step === 3) {
              await t.trainer.cancel(ACME, job.id);
              cancelledAt = p.step;
            }
          },
        }),
      ),
    );
    expect(await run).toBe("cancelled");
    expect(steps - cancelledAt).toBeLessThanOrEqual(1);
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ status: "cancelled", fineTunedModel: null });
    expect(await t.catalog.list({ tenantId: ACME })).toEqual([]);
  });

  it("fails the job with the training loop's error, or the file's when it was deleted", async () => {
    const broken = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    await t.drain(fakeTrain({ failAt: { step: 2, message: "loss is NaN" } }));
    expect(await t.trainer.get(ACME, broken.id)).toMatchObject({ status: "failed", error: { code: "training_failed", message: "loss is NaN", param: null } });
    expect((await events(broken.id))[0]).toMatchObject({ level: "error", message: "The job failed: loss is NaN" });

    const file = await t.upload(ACME);
    const gone = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file });
    await t.files.delete(ACME, file);
    await t.drain();
    expect((await t.trainer.get(ACME, gone.id)).error).toMatchObject({ code: "file_not_found", param: "training_file" });
  });

  it("fails the job when the catalog refuses the adapter", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    const inner = fakeTrain();
    const bad: TrainFn = async (r, h) => ({ ...(await inner(r, h)), adapter: { config: new TextEncoder().encode("{}"), model: new Uint8Array(8) } });
    await t.drain(bad);
    const failed = await t.trainer.get(ACME, job.id);
    expect(failed.status).toBe("failed");
    expect(failed.error!.message).toMatch(/^The trained adapter could not be published: /);
  });

  it("writes nothing once another worker took the job over (lost lease)", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    const a = t.queue("a", 1000);
    const claimed = (await a.claim())!;
    const train = fakeTrain({ steps: 5 });
    const result = await runJob(
      claimed,
      t.deps(a, async (request, hooks) => {
        t.clock.now += 5000;
        await t.queue("b", 1000).claim();
        return train(request, hooks);
      }),
    );
    expect(result).toBe("lost");
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ status: "running", fineTunedModel: null });
    expect(await t.catalog.list({ tenantId: ACME })).toEqual([]);
  });
});
