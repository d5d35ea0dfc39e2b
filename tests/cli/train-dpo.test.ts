/**
 * `switchyard train --method dpo` against the real server with a trainer worker beside it running the
 * real DPO loop (trainDpo on ../shared/models/stories260k) for two steps, continuing an uploaded adapter
 * (`--from`, the SFT-then-DPO recipe): the job carries β, the loss and the pinned adapter, the progress
 * shows the reward margin and accuracy, the end prints the reference-vs-adapter report (one line per
 * validation pair) and `jobs show` prints it again. A chat file given to DPO, and a preference file to
 * SFT, are refused in the CLI's words (the server's 400 invalid_file_format); DPO-only flags without
 * --method dpo are bad usage.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobsCommand } from "../../cli/jobs.ts";
import { trainCommand } from "../../cli/train.ts";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { trainLora } from "../../trainer/train.ts";
import { STORIES_SHAPE } from "../edge/chat/fixtures.ts";
import { captureStream } from "../helpers/capture-stream.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

const QA = join(import.meta.dirname, "../fixtures/training/qa.jsonl");
const PAIRS = readFileSync(join(import.meta.dirname, "../fixtures/training/preferences.jsonl"), "utf8").trim().split("\n");

let p: TestPlatform;
let trainer: TrainerProcess;
let key: string;
let root: string;
let train: string;
let valid: string;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  key = (await createTenantWithKey(p, "cli-dpo")).key;
  trainer = await startTrainer(p.config, trainLora, pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 50 });
  root = mkdtempSync(join(tmpdir(), "cli-dpo-"));
  train = join(root, "train.jsonl");
  valid = join(root, "valid.jsonl");
  writeFileSync(train, PAIRS.slice(0, 8).join("\n"));
  writeFileSync(valid, PAIRS.slice(24, 27).join("\n"));
});
afterAll(async () => {
  await trainer?.close();
  await p?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function cli(command: typeof trainCommand | typeof jobsCommand, argv: string[]) {
  const stdout = captureStream(false);
  const stderr = captureStream(false);
  const code = await command(argv, { stdout: stdout.stream, stderr: stderr.stream, pollMs: 50 });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

const server = () => ["--url", p.url, "--key", key];

describe("switchyard train --method dpo", () => {
  it("refuses a file of the wrong kind for the method in its own words, and DPO flags without --method dpo", async () => {
    const chatToDpo = await cli(trainCommand, [QA, "--method", "dpo", ...server()]);
    expect(chatToDpo.code).toBe(1);
    expect(chatToDpo.stderr).toContain(`${QA} holds chat examples, but a DPO job trains on preference pairs`);
    expect(chatToDpo.stderr).toContain("drop --method dpo");
    const pairsToSft = await cli(trainCommand, [train, "--validation", QA, ...server()]);
    expect(pairsToSft.code).toBe(1);
    expect(pairsToSft.stderr).toContain(`${train} holds preference pairs, but a supervised job trains on chat examples`);
    expect(pairsToSft.stderr).toContain("add --method dpo");
    // The validation file is named when it is the one of the wrong kind.
    const validWrong = await cli(trainCommand, [train, "--validation", QA, "--method", "dpo", ...server()]);
    expect(validWrong.stderr).toContain(`${QA} holds chat examples`);
    expect((await (await p.call("GET", "/v1/fine_tuning/jobs", { key })).json()).data).toHaveLength(0);

    for (const [flags, message] of [
      [["--beta", "0.2"], "--beta applies to --method dpo only"],
      [["--method", "dpo", "--loss", "hinge"], "invalid --loss: hinge (sigmoid or ipo)"],
      [["--method", "ppo"], "invalid --method: ppo (sft or dpo)"],
    ] as const) {
      const run = await cli(trainCommand, [train, ...flags, ...server()]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(message);
    }
  });

  it("continues an adapter with DPO, shows the reward margin and accuracy per step, and prints the report", async () => {
    const { files } = randomPeftAdapter(STORIES_SHAPE, { rank: 4, seed: 2, targets: ["q_proj", "v_proj"], amplitude: 0.01 });
    const form = new FormData();
    form.append("name", "sft-start");
    form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
    form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
    const start = await (await p.call("POST", "/v1/adapters", { key, body: form })).json();

    const run = await cli(trainCommand, [train, "--validation", valid, "--method", "dpo", "--beta", "0.2", "--loss", "ipo", "--from", "sft-start", "--batch-size", "4", "--max-steps", "2", "--learning-rate", "0.002", "--seed", "1", "--suffix", "pref", ...server()]);
    expect(run.stderr).toMatch(/uploaded .*train\.jsonl as file_\S+ \(8 examples, \d+ tokens\)/);
    expect(run.stderr).toMatch(/created DPO fine-tuning job ftjob_\S+ .*\(model stories260k:ad_\S+\)/);
    expect(run.stderr).toContain("Continuing adapter sft-start@1");
    const steps = run.stderr.split("\n").filter((l) => l.startsWith("train: step "));
    expect(steps).toHaveLength(2);
    for (const l of steps) expect(l).toMatch(/^train: step \d\/2 \(\d+%\) \| train loss \d+\.\d{4} \| valid loss (\d+\.\d{4}|-) \| margin -?\d+\.\d{4} \| accuracy \d\.\d\d \| ETA /);
    expect(run.stdout).toBe("pref@1\n");
    expect(run.code).toBe(0);

    const id = /created DPO fine-tuning job (\S+)/.exec(run.stderr)![1]!;
    const job = await (await p.call("GET", `/v1/fine_tuning/jobs/${id}`, { key })).json();
    expect(job).toMatchObject({ model: `stories260k:${start.id}`, method: { type: "dpo", dpo: { hyperparameters: { beta: 0.2, batch_size: 4 } } }, switchyard: { loss_type: "ipo", max_steps: 2 } });
    const result = job.switchyard.result;
    expect(result).toMatchObject({ method: "dpo", validation_pairs: 3, answered_pairs: 3 });
    expect(result.pairs).toHaveLength(3);
    // The report's summary agrees with its pairs.
    expect(result.preferred_share).toBe(result.pairs.filter((x: { margin: number }) => x.margin > 0).length / 3);
    expect(result.moved_toward_chosen).toBe(result.pairs.filter((x: { moved: string }) => x.moved === "chosen").length);
    for (const pair of result.pairs) expect(pair.base).toMatch(/^\S+ was very/);

    // The report at the end, and again in `jobs show`.
    const positive = Math.round(result.preferred_share * 3);
    expect(run.stderr).toContain(`result on 3 validation pair(s) (best step ${result.best_step}): DPO loss `);
    expect(run.stderr).toContain(`the adapter prefers the chosen answer on ${positive}/3`);
    const pairLines = run.stderr.split("\n").filter((l) => /^ {2}pair \d: margin [+-]\d+\.\d{3} \| moved (chosen|rejected|none) +\| base ".*" -> adapter ".*"$/.test(l));
    expect(pairLines).toHaveLength(3);
    const show = await cli(jobsCommand, ["show", id, ...server()]);
    expect(show.stdout).toMatch(/^hyperparameters +method=dpo beta=0\.2 .*loss_type=ipo/m);
    for (const line of pairLines) expect(show.stdout).toContain(line);
    expect(show.stdout).toContain("Validation, reference -> adapter");
  }, 180_000);
});
