/** The trainer's loop: runs queued jobs one at a time, and on stop hands the running one back to the queue. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fakeTrain } from "../../../trainer/jobs/fake-train.ts";
import type { RunResult } from "../../../trainer/jobs/runner.ts";
import { TrainerWorker } from "../../../trainer/jobs/worker.ts";
import { BASE, openTestJobs, type TestJobs } from "./helpers.ts";

let t: TestJobs;
beforeEach(async () => {
  t = await openTestJobs();
});
afterEach(async () => {
  await t.close();
});

const ACME = "t_acme";

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("TrainerWorker", () => {
  it("runs each queued job, including one submitted while it polls", async () => {
    const done: Array<[string, RunResult]> = [];
    const worker = new TrainerWorker({ ...t.deps(t.queue("w")), pollMs: 20, onDone: (id, r) => done.push([id, r]) });
    const file = await t.upload(ACME);
    const first = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file });
    worker.start();
    await until(async () => done.length === 1);
    const second = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: file });
    worker.poke();
    await until(async () => done.length === 2);
    await worker.stop();
    expect(done).toEqual([
      [first.id, "succeeded"],
      [second.id, "succeeded"],
    ]);
  });

  it("on stop, aborts the running job and queues it again for the next trainer", async () => {
    const job = await t.trainer.submit({ tenantId: ACME, model: BASE, trainingFile: await t.upload(ACME) });
    const worker = new TrainerWorker({ ...t.deps(t.queue("w"), fakeTrain({ steps: 1000, stepMs: 5 })), pollMs: 20 });
    worker.start();
    await until(async () => (await t.trainer.events(ACME, job.id)).data.some((e) => e.type === "metrics"));
    await worker.stop();
    expect(await t.trainer.get(ACME, job.id)).toMatchObject({ status: "queued", fineTunedModel: null });
    expect((await t.trainer.events(ACME, job.id)).data[0]!.message).toBe("The trainer stopped; the job is queued again");
    expect(await t.catalog.list({ tenantId: ACME })).toEqual([]);
  });
});
