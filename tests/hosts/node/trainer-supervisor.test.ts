/**
 * `switchyard start` supervises the trainer process: the real server as a child process, its trainer
 * (`switchyard serve trainer`, with the stand-in training loop: SWITCHYARD_TRAINER_FAKE_TRAIN, tests only)
 * runs a job, is restarted after kill -9 and runs the next, and stops with the server.
 */
import { afterAll, describe, expect, it } from "vitest";
import { childTenant, removeDataDir, spawnServer, type LogLine, type ServerChild } from "../../helpers/server-child.ts";
import { trainingJsonl } from "../../ports/files.contract.ts";

let s: ServerChild | undefined;
afterAll(async () => {
  if (!s) return;
  await s.stop();
  removeDataDir(s.dataDir);
});

const trainerStarted = (not?: number) => (l: LogLine) => l.msg === "trainer started" && l.pid !== not;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function trainOne(server: ServerChild, key: string): Promise<Record<string, unknown>> {
  const form = new FormData();
  form.set("purpose", "fine-tune");
  form.set("file", new File([trainingJsonl(3)], "train.jsonl"));
  const file = await (await server.call("POST", "/v1/files", { key, body: form })).json();
  const job = await (await server.call("POST", "/v1/fine_tuning/jobs", { key, json: { model: "stories260k", training_file: file.id } })).json();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const now = await (await server.call("GET", `/v1/fine_tuning/jobs/${job.id}`, { key })).json();
    if (now.status === "succeeded" || now.status === "failed" || Date.now() > deadline) return now;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the supervised trainer process", () => {
  it("runs jobs, comes back after kill -9, and stops with the server", async () => {
    s = await spawnServer({ env: { SWITCHYARD_TRAINER: "on", SWITCHYARD_TRAINER_FAKE_TRAIN: "1", SWITCHYARD_REQUESTS_PER_MINUTE: "0" } });
    const first = Number((await s.waitForLog(trainerStarted())).pid);
    expect(first).not.toBe(s.pid);
    const { key } = await childTenant(s, "supervised");
    expect(await trainOne(s, key)).toMatchObject({ status: "succeeded", fine_tuned_model: expect.stringMatching(/@1$/) });

    process.kill(first, "SIGKILL");
    expect((await s.waitForLog((l) => l.msg === "trainer process exited; restarting")).signal).toBe("SIGKILL");
    const second = Number((await s.waitForLog(trainerStarted(first))).pid);
    expect(alive(second)).toBe(true);
    expect(await trainOne(s, key)).toMatchObject({ status: "succeeded" });

    await s.stop();
    expect(alive(second)).toBe(false);
    removeDataDir(s.dataDir);
    s = undefined;
  }, 60_000);
});
