/**
 * The trainer port's contract, for every implementation: the store-backed one (with a stand-in
 * training loop behind `run`), and the HTTP client of a control node. `make` gives a fresh trainer where
 * the tenants CONTRACT_TENANTS exist, whose base model is `base`, with `upload` storing a valid fine-tune
 * file for a tenant and `run` training every queued job to its end. A trainer shared by the suite (one
 * node process) names instead two tenants no test has used.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Trainer } from "../../ports/trainer.ts";
import { refused } from "../helpers/refused.ts";

export const CONTRACT_TENANTS = ["t_acme", "t_globex"] as const;

export interface TrainerUnderTest {
  trainer: Trainer;
  base: string;
  /** A shared trainer: this test's two tenants (they need not exist yet). */
  tenants?: [string, string];
  upload(tenantId: string): Promise<string>;
  run(): Promise<void>;
  close(): Promise<void>;
}

export function describeTrainerContract(name: string, make: () => Promise<TrainerUnderTest>): void {
  describe(`Trainer contract: ${name}`, () => {
    let t: TrainerUnderTest;
    let ACME: string = CONTRACT_TENANTS[0];
    let GLOBEX: string = CONTRACT_TENANTS[1];
    beforeEach(async () => {
      t = await make();
      [ACME, GLOBEX] = t.tenants ?? CONTRACT_TENANTS;
    });
    afterEach(async () => {
      await t.close();
    });

    it("queues a job over the tenant's file, with what was asked, and shows it to that tenant only", async () => {
      const file = await t.upload(ACME);
      const job = await t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: file, suffix: "support-bot", seed: 7, metadata: { team: "a" }, hyperparameters: { nEpochs: 2, rank: 8 } });
      expect(job).toMatchObject({ tenantId: ACME, model: t.base, status: "queued", trainingFile: file, validationFile: null, suffix: "support-bot", seed: 7, metadata: { team: "a" }, fineTunedModel: null, trainedTokens: null, error: null, finishedAt: null });
      expect(job.hyperparameters).toEqual({ nEpochs: 2, rank: 8 });
      expect(await t.trainer.get(ACME, job.id)).toEqual(job);
      expect((await t.trainer.list(ACME)).data.map((j) => j.id)).toEqual([job.id]);
      await refused(t.trainer.get(GLOBEX, job.id), "not_found");
      await refused(t.trainer.cancel(GLOBEX, job.id), "not_found");
      await refused(t.trainer.events(GLOBEX, job.id), "not_found");
      expect((await t.trainer.list(GLOBEX)).data).toEqual([]);
    });

    it("refuses another tenant's file, a missing one, another model and a bad suffix, naming the field", async () => {
      const theirs = await t.upload(GLOBEX);
      const mine = await t.upload(ACME);
      expect((await refused(t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: theirs }), "not_found")).param).toBe("training_file");
      expect((await refused(t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: "file_nope" }), "not_found")).param).toBe("training_file");
      expect((await refused(t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: mine, validationFile: theirs }), "not_found")).param).toBe("validation_file");
      expect((await refused(t.trainer.submit({ tenantId: ACME, model: "gpt-4o-mini", trainingFile: mine }), "invalid_request")).param).toBe("model");
      const adapter = await refused(t.trainer.submit({ tenantId: ACME, model: `${t.base}:no-such-adapter`, trainingFile: mine }), "not_found"); // continuing an adapter the tenant does not have
      expect(adapter).toMatchObject({ code: "model_not_found", param: "model" });
      expect((await refused(t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: mine, suffix: "no spaces" }), "invalid_request")).param).toBe("suffix");
      expect((await t.trainer.list(ACME)).data).toEqual([]);
    });

    it("lists newest first in cursor pages", async () => {
      const file = await t.upload(ACME);
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push((await t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: file })).id);
      const first = await t.trainer.list(ACME, { limit: 2 });
      expect(first.data.map((j) => j.id)).toEqual([ids[2], ids[1]]);
      expect(first.hasMore).toBe(true);
      const second = await t.trainer.list(ACME, { limit: 2, after: ids[1] });
      expect(second).toMatchObject({ data: [{ id: ids[0] }], hasMore: false });
      await refused(t.trainer.list(ACME, { after: "ftjob_nope" }), "invalid_request");
    });

    it("cancels a queued job at once; a finished one is not cancellable", async () => {
      const job = await t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: await t.upload(ACME) });
      const cancelled = await t.trainer.cancel(ACME, job.id);
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled.finishedAt).not.toBeNull();
      expect((await refused(t.trainer.cancel(ACME, job.id), "invalid_request")).code).toBe("job_not_cancellable");
      await t.run();
      expect((await t.trainer.get(ACME, job.id)).status).toBe("cancelled");
    });

    it("trains a job to a published adapter, with metrics events (and their series) and a checkpoint", async () => {
      const job = await t.trainer.submit({ tenantId: ACME, model: t.base, trainingFile: await t.upload(ACME), suffix: "helper" });
      await t.run();
      const done = await t.trainer.get(ACME, job.id);
      expect(done).toMatchObject({ status: "succeeded", fineTunedModel: "helper@1", error: null });
      expect(done.trainedTokens).toBeGreaterThan(0);
      expect(done.finishedAt).not.toBeNull();

      const events = (await t.trainer.events(ACME, job.id, { limit: 100 })).data;
      expect(events[0]!.message).toMatch(/successfully completed: helper@1/);
      expect(events.at(-1)!.message).toMatch(/Created fine-tuning job/);
      const metrics = events.filter((e) => e.type === "metrics");
      expect(metrics.length).toBeGreaterThan(0);
      expect(metrics[0]!.data).toMatchObject({ step: expect.any(Number), train_loss: expect.any(Number), learning_rate: expect.any(Number) });
      const ids = events.map((e) => Number(e.id.replace(/\D/g, "")));
      expect(ids).toEqual([...ids].sort((a, b) => b - a));

      const page = await t.trainer.events(ACME, job.id, { limit: 2 });
      expect(page.hasMore).toBe(true);
      const next = await t.trainer.events(ACME, job.id, { limit: 2, after: page.data[1]!.id });
      expect(next.data[0]!.id).toBe(events[2]!.id);

      const series = await t.trainer.metrics(ACME, job.id);
      expect(series.step).toEqual(metrics.map((e) => e.data!.step).reverse());
      expect(series.trainLoss).toEqual(metrics.map((e) => e.data!.train_loss).reverse());
      for (const column of Object.values(series)) expect(column).toHaveLength(metrics.length);
      await refused(t.trainer.metrics(GLOBEX, job.id), "not_found");

      const checkpoints = (await t.trainer.checkpoints(ACME, job.id)).data;
      expect(checkpoints).toHaveLength(1);
      expect(checkpoints[0]).toMatchObject({ jobId: job.id, fineTunedModel: "helper@1", metrics: { step: checkpoints[0]!.step } });
      await refused(t.trainer.checkpoints(GLOBEX, job.id), "not_found");
    });
  });
}
