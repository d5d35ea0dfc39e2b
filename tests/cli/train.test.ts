/**
 * `switchyard train` and `switchyard jobs` against the real server started in this process, with a
 * trainer worker beside it (hosts/node/trainer.ts over the same data dir) running the stand-in training
 * loop (trainer/jobs/fake-train.ts: the real job runner, files and catalog, only the steps are made up),
 * so the CLI's upload, job creation, progress, events, cancel and detach are what is tested.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobsCommand } from "../../cli/jobs.ts";
import { trainCommand } from "../../cli/train.ts";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

const QA = join(import.meta.dirname, "../fixtures/training/qa.jsonl");
const STEP_MS = 40;

let p: TestPlatform;
let trainer: TrainerProcess;
let key: string;
let root: string;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  key = (await createTenantWithKey(p, "cli-train")).key;
  trainer = await startTrainer(p.config, fakeTrain({ stepMs: STEP_MS }), pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 50 });
  root = mkdtempSync(join(tmpdir(), "cli-train-"));
});
afterAll(async () => {
  await trainer?.close();
  await p?.stop();
  rmSync(root, { recursive: true, force: true });
});

function stream(isTTY: boolean) {
  const out = Object.assign(new PassThrough(), { isTTY, columns: 160 });
  let text = "";
  out.on("data", (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

async function cli(command: typeof trainCommand | typeof jobsCommand, argv: string[], options: { tty?: boolean; interrupt?: AbortSignal } = {}) {
  const stdout = stream(false);
  const stderr = stream(options.tty ?? false);
  const code = await command(argv, { stdout: stdout.out, stderr: stderr.out, interrupt: options.interrupt, pollMs: 50 });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

const server = () => ["--url", p.url, "--key", key];

async function job(id: string) {
  return (await p.call("GET", `/v1/fine_tuning/jobs/${id}`, { key })).json();
}

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("switchyard train", () => {
  let succeeded: string;

  it("uploads, creates the job with the options, draws step and losses, and prints the fine_tuned_model", async () => {
    const run = await cli(
      trainCommand,
      [QA, "--validation", QA, "--suffix", "qa", "--epochs", "2", "--batch-size", "4", "--learning-rate", "0.01", "--rank", "4", "--alpha", "8", "--max-steps", "5", "--seed", "3", ...server()],
      { tty: true },
    );
    expect(run.stderr).toMatch(/uploaded .*qa\.jsonl as file_\S+ \(12 examples, \d+ tokens\)/);
    expect(run.stderr).toMatch(/train \[[█░]+\] 100% \| step 5\/5 \| train loss 0\.6000 \| valid loss 0\.7000 \| ETA /);
    expect(run.stderr).toContain("Training on 12 examples, validating on 12");
    expect(run.stdout).toBe("qa@1\n");
    expect(run.stderr).toContain("succeeded: fine_tuned_model qa@1");
    expect(run.code).toBe(0);

    succeeded = /created fine-tuning job (\S+)/.exec(run.stderr)![1]!;
    expect(await job(succeeded)).toMatchObject({
      status: "succeeded",
      seed: 3,
      user_provided_suffix: "qa",
      hyperparameters: { n_epochs: 2, batch_size: 4 },
      switchyard: { r: 4, alpha: 8, learning_rate: 0.01, max_steps: 5 },
    });
    // The adapter is served at once.
    const chat = await p.call("POST", "/v1/chat/completions", { key, json: { model: "qa@1", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 } });
    expect(chat.status).toBe(200);
  });

  it("prints a line per tenth of the steps when not on a terminal", async () => {
    const run = await cli(trainCommand, [QA, "--max-steps", "10", ...server()]);
    const steps = run.stderr.split("\n").filter((l) => l.startsWith("train: step "));
    expect(steps).toHaveLength(10);
    expect(steps[0]).toMatch(/^train: step 1\/10 \(10%\) \| train loss 3\.0000 \| valid loss (\d\.\d{4}|-) \| ETA (\d+s|-)$/);
    expect(steps.at(-1)).toMatch(/^train: step 10\/10 \(100%\) \| train loss 0\.3000/);
    expect(run.stdout).toMatch(/^ft-\S+@1\n$/);
    expect(run.code).toBe(0);
  });

  it("prints the bad lines of a refused file with their numbers and exits 1, creating no job", async () => {
    const bad = join(root, "bad.jsonl");
    const good = readFileSync(QA, "utf8").split("\n")[0]!;
    writeFileSync(bad, [good, "not json", JSON.stringify({ messages: [{ role: "user", content: "no answer" }] }), good].join("\n"));
    const before = (await (await p.call("GET", "/v1/fine_tuning/jobs", { key })).json()).data.length;
    const run = await cli(trainCommand, [bad, ...server()]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${bad} was refused: The training file has 2 invalid lines`);
    expect(run.stderr).toMatch(/^line 2: /m);
    expect(run.stderr).toMatch(/^line 3: .*assistant/m);
    expect(run.stdout).toBe("");
    expect((await (await p.call("GET", "/v1/fine_tuning/jobs", { key })).json()).data.length).toBe(before);
  });

  it("refuses bad usage with exit 2: no file, a missing file, a bad number, no key, no server", async () => {
    expect((await cli(trainCommand, server())).stderr).toContain("give the training file");
    const missing = await cli(trainCommand, [join(root, "nope.jsonl"), ...server()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no such file");
    const badNumber = await cli(trainCommand, [QA, "--epochs", "two", ...server()]);
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toContain("invalid --epochs: two");
    const saved = process.env.SWITCHYARD_API_KEY;
    delete process.env.SWITCHYARD_API_KEY;
    try {
      const noKey = await cli(trainCommand, [QA, "--url", p.url]);
      expect(noKey.code).toBe(2);
      expect(noKey.stderr).toContain("--key KEY, or set $SWITCHYARD_API_KEY");
    } finally {
      if (saved !== undefined) process.env.SWITCHYARD_API_KEY = saved;
    }
    const gone = await cli(trainCommand, [QA, "--url", "http://127.0.0.1:1", "--key", key]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain("cannot reach the switchyard server at http://127.0.0.1:1");
  });

  it("jobs lists the jobs, found through the data dir's server; jobs show prints the job and its events oldest first", async () => {
    const list = await cli(jobsCommand, ["--data-dir", p.dataDir, "--key", key]);
    expect(list.code).toBe(0);
    const [header, ...rows] = list.stdout.trim().split("\n");
    expect(header).toMatch(/^ID +STATUS +MODEL +FINE_TUNED_MODEL +CREATED$/);
    expect(rows.find((r) => r.startsWith(succeeded))).toMatch(new RegExp(`^${succeeded} +succeeded +stories260k +qa@1 +\\d{4}-\\d\\d-\\d\\dT`));
    expect((await cli(jobsCommand, ["list", "--limit", "1", ...server()])).stdout.trim().split("\n")).toHaveLength(2);

    const show = await cli(jobsCommand, ["show", succeeded, ...server()]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^id +ftjob_/);
    expect(show.stdout).toMatch(/^fine_tuned_model +qa@1$/m);
    expect(show.stdout).toMatch(/^hyperparameters +n_epochs=2 batch_size=4 .*r=4 alpha=8/m);
    const events = show.stdout.split("events:\n")[1]!.trim().split("\n");
    const at = (text: string) => events.findIndex((l) => l.includes(text));
    expect(at("Training on 12 examples")).toBeGreaterThanOrEqual(0);
    expect(at("Step 1/5")).toBeGreaterThan(at("Training on 12 examples"));
    expect(at("Step 5/5")).toBeGreaterThan(at("Step 1/5"));
    expect(at("successfully completed: qa@1")).toBeGreaterThan(at("Step 5/5"));

    const unknown = await cli(jobsCommand, ["show", "ftjob_nope", ...server()]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("switchyard jobs: No such fine-tuning job: 'ftjob_nope'.\n");
  });

  it("detaches on Ctrl-C and says how to follow again; jobs show --follow follows it; jobs cancel cancels it", async () => {
    const interrupt = new AbortController();
    const stderr = stream(false);
    const stdout = stream(false);
    stderr.out.on("data", (d: Buffer) => {
      if (d.toString().includes("train: step")) interrupt.abort();
    });
    const code = await trainCommand([QA, "--max-steps", "400", ...server()], { stdout: stdout.out, stderr: stderr.out, interrupt: interrupt.signal, pollMs: 50 });
    expect(code).toBe(130);
    const id = /created fine-tuning job (\S+)/.exec(stderr.text())![1]!;
    expect(stderr.text()).toContain(`detached from ${id}, which goes on; follow it again with: switchyard jobs show ${id} --follow`);
    expect((await job(id)).status).toBe("running");

    // Follow it, and cancel it from another command while following.
    const following = cli(jobsCommand, ["show", id, "--follow", ...server()]);
    await until(() => job(id), (j) => j.status === "running");
    const cancel = await cli(jobsCommand, ["cancel", id, ...server()]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^${id}: (cancelled|cancel requested)`));
    const followed = await following;
    expect(followed.stdout).toMatch(/Step \d+\/400: training loss=/);
    expect(followed.stdout).toContain("-- cancelled");
    expect(followed.code).toBe(1);
    expect((await job(id)).status).toBe("cancelled");
  });

  it("--detach prints the job id; --cancel-on-interrupt cancels on Ctrl-C", async () => {
    const detached = await cli(trainCommand, [QA, "--max-steps", "3", "--detach", ...server()]);
    expect(detached.code).toBe(0);
    const id = detached.stdout.trim();
    expect(id).toMatch(/^ftjob_/);
    expect(detached.stderr).toContain(`follow it with: switchyard jobs show ${id} --follow`);
    expect(await until(() => job(id), (j) => j.status === "succeeded")).toMatchObject({ status: "succeeded" });

    const interrupt = new AbortController();
    const stderr = stream(false);
    stderr.out.on("data", (d: Buffer) => {
      if (d.toString().includes("train: step")) interrupt.abort();
    });
    const code = await trainCommand([QA, "--max-steps", "400", "--cancel-on-interrupt", ...server()], { stdout: stream(false).out, stderr: stderr.out, interrupt: interrupt.signal, pollMs: 50 });
    expect(code).toBe(130);
    const cancelled = /created fine-tuning job (\S+)/.exec(stderr.text())![1]!;
    expect(stderr.text()).toContain(`cancel requested for ${cancelled}`);
    expect(await until(() => job(cancelled), (j) => j.status === "cancelled")).toMatchObject({ status: "cancelled" });
  });

  it("as a process: SIGINT (Ctrl-C) while following detaches with exit 130, the job goes on", async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "../../bin/switchyard.mjs"), "train", QA, "--max-steps", "400", ...server()], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let interrupted = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!interrupted && stderr.includes("train: step")) interrupted = child.kill("SIGINT");
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(130);
    const id = /created fine-tuning job (\S+)/.exec(stderr)![1]!;
    expect(stderr).toContain(`follow it again with: switchyard jobs show ${id} --follow`);
    expect((await job(id)).status).toBe("running");
    await p.call("POST", `/v1/fine_tuning/jobs/${id}/cancel`, { key });
    expect(await until(() => job(id), (j) => j.status === "cancelled")).toMatchObject({ status: "cancelled" });
  }, 60_000);
});
