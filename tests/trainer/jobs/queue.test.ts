/** The job queue across trainer processes (each queue on its own SQLite connection): one claim per job, leases, heartbeats, cancels, hand-back. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestJobs, BASE, type TestJobs } from "./helpers.ts";

let t: TestJobs;
beforeEach(async () => {
  t = await openTestJobs();
});
afterEach(async () => {
  await t.close();
});

const submit = async () => t.trainer.submit({ tenantId: "t_acme", model: BASE, trainingFile: await t.upload("t_acme") });
const messages = async (jobId: string) => (await t.trainer.events("t_acme", jobId, { limit: 100 })).data.map((e) => e.message);

describe("JobQueue", () => {
  it("gives each job to exactly one of two workers claiming at once, oldest first", async () => {
    const jobs = [await submit(), await submit(), await submit()];
    const [a, b] = [t.queue("a"), t.queue("b")];
    const claimed: string[] = [];
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all([a.claim(), b.claim()]);
      claimed.push(...got.filter((j) => j !== undefined).map((j) => j.id));
    }
    expect(claimed.sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(new Set(claimed).size).toBe(3);
    expect((await t.trainer.get("t_acme", jobs[0]!.id)).status).toBe("running");
    expect(await a.claim()).toBeUndefined();
  });

  it("keeps a heartbeating job; an expired lease makes it claimable again, and the old owner learns it lost it", async () => {
    const job = await submit();
    const a = t.queue("a", 1000);
    const b = t.queue("b", 1000);
    expect((await a.claim())!.id).toBe(job.id);
    t.clock.now += 600;
    expect(await a.heartbeat(job.id)).toBe("ok");
    t.clock.now += 600;
    expect(await b.claim()).toBeUndefined();
    t.clock.now += 1500;
    const again = await b.claim();
    expect(again).toMatchObject({ id: job.id, attempts: 2, leaseOwner: "b" });
    expect(await a.heartbeat(job.id)).toBe("lost");
    expect(await a.finish(job.id, { status: "cancelled" })).toBe(false);
    expect((await messages(job.id))[0]).toMatch(/attempt 2: the previous trainer stopped heartbeating\)$/);
    expect(await b.finish(job.id, { status: "failed", error: { code: "x", message: "boom", param: null } })).toBe(true);
    expect(await t.trainer.get("t_acme", job.id)).toMatchObject({ status: "failed", error: { code: "x", message: "boom", param: null } });
  });

  it("cancels a queued job at once and flags a running one for its worker", async () => {
    const queued = await submit();
    expect((await t.trainer.cancel("t_acme", queued.id)).status).toBe("cancelled");
    const running = await submit();
    const a = t.queue("a");
    expect((await a.claim())!.id).toBe(running.id);
    expect((await t.trainer.cancel("t_acme", running.id)).status).toBe("running");
    expect(await a.heartbeat(running.id)).toBe("cancel");
    await a.finish(running.id, { status: "cancelled" });
    expect((await t.trainer.get("t_acme", running.id)).status).toBe("cancelled");
  });

  it("cancels a running job whose trainer died at once, and never restarts a job asked to cancel", async () => {
    const job = await submit();
    const a = t.queue("a", 1000);
    await a.claim();
    t.clock.now += 5000;
    expect((await t.trainer.cancel("t_acme", job.id)).status).toBe("cancelled");

    const other = await submit();
    await a.claim();
    await t.trainer.cancel("t_acme", other.id);
    t.clock.now += 5000;
    expect(await t.queue("b", 1000).claim()).toBeUndefined();
    expect((await t.trainer.get("t_acme", other.id)).status).toBe("cancelled");
  });

  it("hands a job back to the queue on shutdown (cancelled instead when a cancel was asked)", async () => {
    const job = await submit();
    const a = t.queue("a");
    await a.claim();
    await a.release(job.id);
    expect(await t.trainer.get("t_acme", job.id)).toMatchObject({ status: "queued" });
    const b = t.queue("b");
    expect((await b.claim())!.id).toBe(job.id);
    await t.trainer.cancel("t_acme", job.id);
    await b.release(job.id);
    expect((await t.trainer.get("t_acme", job.id)).status).toBe("cancelled");
  });
});
