/**
 * kill -9 of the trainer process mid-job, with the real training loop (trainLora on stories260k): the
 * server runs in this process; `switchyard serve trainer` runs as a child over its data dir with a short
 * lease. Once the job's first state checkpoint is on disk the child is SIGKILLed; a second child reclaims
 * the job when the lease expires, resumes from that checkpoint (not step 0), finishes, publishes every
 * epoch once and the best last, deletes the job's checkpoint folder, and chat answers with the adapter.
 * The edge's chat latency while the job trains is measured and logged, not asserted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const QA = readFileSync(join(repoRoot, "tests/fixtures/training/qa.jsonl"), "utf8");

let p: TestPlatform;
let key: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  key = (await createTenantWithKey(p, "resume")).key;
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await p.stop();
});

/** `switchyard serve trainer` over the platform's data dir, with a short lease and heartbeat; resolves once it logged "trainer started". */
async function spawnTrainer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(repoRoot, "bin/switchyard.mjs"), "serve", "trainer"], {
    cwd: repoRoot,
    env: { ...process.env, SWITCHYARD_DATA_DIR: p.dataDir, SWITCHYARD_LOG_LEVEL: "info", SWITCHYARD_TRAINER_LEASE_MS: "1500", SWITCHYARD_TRAINER_HEARTBEAT_MS: "200", SWITCHYARD_TRAINER_FAKE_TRAIN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((done, fail) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"msg":"trainer started"')) done();
    });
    child.once("exit", (code) => fail(new Error(`the trainer exited (${code}) before starting:\n${err}`)));
  });
  return child;
}

async function until<T>(read: () => Promise<T> | T, done: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const chat = async (model: string, content: string) => {
  const started = performance.now();
  const res = await p.call("POST", "/v1/chat/completions", { key, json: { model, messages: [{ role: "user", content }], max_tokens: 12, temperature: 0 } });
  const body = await res.json();
  return { status: res.status, text: String(body.choices?.[0]?.message?.content ?? ""), ms: performance.now() - started };
};

describe("a trainer killed with -9 mid-job", () => {
  it("is resumed by the next trainer from its last checkpoint and the job succeeds", async () => {
    const form = new FormData();
    form.set("purpose", "fine-tune");
    form.set("file", new File([QA], "qa.jsonl"));
    const file = await (await p.call("POST", "/v1/files", { key, body: form })).json();
    // 12 chats, batch 4: 3 steps per epoch, 4 epochs; evaluations (and state checkpoints) every 3 steps.
    const job = await (
      await p.call("POST", "/v1/fine_tuning/jobs", {
        key,
        json: {
          model: "stories260k",
          training_file: file.id,
          validation_file: file.id,
          suffix: "qa",
          seed: 1,
          method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 4, batch_size: 4 } } },
          switchyard: { learning_rate: 1e-2, max_steps: 12, eval_every: 3, early_stopping: { patience: 10 }, r: 4, target_modules: ["q_proj", "v_proj"] },
        },
      })
    ).json();
    expect(job.status).toBe("queued");
    const stateDir = join(p.dataDir, "training", job.id);
    const states = () => (existsSync(stateDir) ? readdirSync(stateDir).filter((n) => n.endsWith(".safetensors")) : []);

    const t0 = performance.now();
    const first = await spawnTrainer();
    const events = async () => ((await (await p.call("GET", `/v1/fine_tuning/jobs/${job.id}/events?limit=100`, { key })).json()).data as Array<{ message: string; type: string; data: { step?: number } | null }>).reverse();
    await until(events, (e) => e.some((x) => x.type === "metrics"), 90_000, "the first step");
    const tStep = performance.now();
    const latencies: number[] = [];
    for (let i = 0; i < 6; i++) latencies.push((await chat("stories260k", "Once upon a time")).ms);
    await until(states, (s) => s.length > 0, 90_000, "the first state checkpoint");
    const tKill = performance.now();
    const killed = new Promise((done) => first.once("exit", done));
    first.kill("SIGKILL");
    await killed;
    const onDisk = states().map((n) => Number(/step-(\d+)/.exec(n)![1]));
    expect(onDisk.length).toBeGreaterThan(0);

    await spawnTrainer();
    const done = await until(async () => (await p.call("GET", `/v1/fine_tuning/jobs/${job.id}`, { key })).json(), (j) => j.status !== "running" && j.status !== "queued", 120_000, "the job to finish");
    expect(done).toMatchObject({ status: "succeeded", error: null, fine_tuned_model: expect.stringMatching(/^qa@\d+$/) });

    const tDone = performance.now();
    const log = await events();
    const resumedAt = log.findIndex((e) => e.message.startsWith("Resumed from step"));
    expect(resumedAt).toBeGreaterThan(0);
    const step = log[resumedAt]!.data!.step!;
    expect(Math.max(...onDisk)).toBe(step); // the newest checkpoint at the kill, not step 0
    expect(step % 3).toBe(0);
    const later = log.slice(resumedAt).filter((e) => e.type === "metrics").map((e) => e.data!.step!);
    expect(later).toEqual(Array.from({ length: 12 - step }, (_, i) => step + 1 + i));
    expect(log.some((e) => /attempt 2/.test(e.message))).toBe(true);

    const checkpoints = ((await (await p.call("GET", `/v1/fine_tuning/jobs/${job.id}/checkpoints?limit=100`, { key })).json()).data as Array<{ step_number: number; fine_tuned_model_checkpoint: string }>).reverse();
    // Each epoch once despite the replay, then the best again only when it is not the newest; after success the
    // last 3 epochs' versions (steps 6, 9, 12) and the best are left. Versions published: 4 epochs (+ the best on
    // its own), so the newest is qa@4 (or qa@5): nothing was published twice or unrecorded.
    expect(new Set(checkpoints.map((c) => c.step_number))).toEqual(new Set([6, 9, 12, ...checkpoints.filter((c) => c.fine_tuned_model_checkpoint === done.fine_tuned_model).map((c) => c.step_number)]));
    expect(checkpoints.length).toBeGreaterThanOrEqual(3);
    expect(checkpoints.length).toBeLessThanOrEqual(4);
    const versions = checkpoints.map((c) => Number(c.fine_tuned_model_checkpoint.split("@")[1])).sort((a, b) => a - b);
    expect(new Set(versions).size).toBe(versions.length);
    expect(Math.max(...versions)).toBe(checkpoints.length + 1);
    expect(done.fine_tuned_model).toBe(`qa@${checkpoints.length + 1}`);
    expect(existsSync(stateDir)).toBe(false);

    const trained = await chat(done.fine_tuned_model, "What is the name of the red dog?");
    expect(trained.status).toBe(200);
    expect(trained.text.length).toBeGreaterThan(0);
    expect((await chat("qa", "What is the name of the red dog?")).text).toBe(trained.text); // the bare name is the best
    latencies.sort((a, b) => a - b);
    console.log(`kill -9 resume: killed with checkpoints at steps [${onDisk.join(", ")}], resumed from step ${step}; ${checkpoints.length} checkpoints, served ${done.fine_tuned_model}; chat p50 while training ${latencies[Math.floor(latencies.length / 2)]!.toFixed(0)} ms over ${latencies.length} requests; first step after ${((tStep - t0) / 1000).toFixed(1)} s, kill at ${((tKill - t0) / 1000).toFixed(1)} s, done at ${((tDone - t0) / 1000).toFixed(1)} s`);
  }, 300_000);
});
