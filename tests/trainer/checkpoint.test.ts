/**
 * Resumable training state (trainer/checkpoint.ts) and resume (trainLora's `resume`):
 *   - a state encodes and decodes to the same values; a truncated, bit-flipped or foreign file is refused,
 *     and `latest` falls back to the previous good file (or to nothing);
 *   - writes leave no temporary behind and keep the 2 newest files;
 *   - on stories260k a run resumed from a mid-run checkpoint (after a file round trip) ends with the same
 *     adapter bytes, best step and losses as the uninterrupted run, and reports the same later steps and epochs.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrainingData, type TrainingExample } from "../../services/files/training-data.ts";
import { CheckpointDir, decodeCheckpoint, encodeCheckpoint, type TrainCheckpoint } from "../../trainer/checkpoint.ts";
import { trainFingerprint, trainLora, type EpochEnd, type TrainProgress, type TrainRequest } from "../../trainer/train.ts";
import { findModel } from "../helpers/model-path.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");

function sampleState(step: number, seed = 1): TrainCheckpoint {
  let x = seed;
  const rand = (n: number) => Float32Array.from({ length: n }, () => ((x = (x * 16807) % 2147483647) / 2147483647) * 2 - 1);
  return {
    fingerprint: "f".repeat(64),
    step,
    epoch: 2,
    stepInEpoch: 1,
    trainedTokens: 1234,
    modules: ["model.layers.0.self_attn.q_proj"],
    params: [rand(8), rand(6)],
    optimizer: { step, m: [rand(8), rand(6)], v: [rand(8).map(Math.abs), rand(6).map(Math.abs)] },
    best: { base: { loss: 4.1, tokenAccuracy: 0.125 }, best: { loss: 1.25, tokenAccuracy: 0.75 }, step: step - 1, worse: 1, stopped: false, params: [rand(8), rand(6)] },
    history: [
      { step: 0, validLoss: 4.1, tokenAccuracy: 0.1 },
      { step: step - 1, validLoss: 1.25, tokenAccuracy: 0.5, trainLoss: 1.5 },
    ],
  };
}

describe("training state files", () => {
  let dir: string;
  beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), "sy-ckpt-"))));
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("round-trips every field exactly", () => {
    const state = sampleState(7);
    const back = decodeCheckpoint(encodeCheckpoint("ftjob_a", state));
    expect(back.jobId).toBe("ftjob_a");
    expect(back.state).toEqual(state);
  });

  it("refuses a truncated, corrupted or foreign file, and `latest` falls back to the previous good one", () => {
    const bytes = encodeCheckpoint("ftjob_a", sampleState(7));
    for (const cut of [4, 20, bytes.byteLength - 100, bytes.byteLength - 1]) expect(() => decodeCheckpoint(bytes.subarray(0, cut))).toThrow(/checkpoint|JSON/);
    const flipped = bytes.slice();
    flipped[bytes.byteLength - 3] = flipped[bytes.byteLength - 3]! ^ 0x10;
    expect(() => decodeCheckpoint(flipped)).toThrow(/checksum/);

    const job = new CheckpointDir(join(dir, "ftjob_a"), "ftjob_a");
    expect(job.latest()).toBeUndefined();
    job.write(sampleState(5));
    const newest = job.write(sampleState(10));
    writeFileSync(newest, readFileSync(newest).subarray(0, 300)); // a crash mid-write without the rename
    const skipped: string[] = [];
    expect(job.latest((file, reason) => skipped.push(`${file}: ${reason}`))?.step).toBe(5);
    expect(skipped).toEqual([expect.stringMatching(/^step-00000010\.safetensors: checkpoint: /)]);

    const other = new CheckpointDir(join(dir, "ftjob_a"), "ftjob_b");
    const why: string[] = [];
    expect(other.latest((_, reason) => why.push(reason))).toBeUndefined();
    expect(why.at(-1)).toMatch(/of job ftjob_a, not ftjob_b/);
  });

  it("writes whole files only and keeps the two newest", () => {
    const job = new CheckpointDir(join(dir, "ftjob_keep"), "ftjob_keep");
    for (const step of [3, 6, 9, 12]) job.write(sampleState(step));
    expect(readdirSync(job.dir).sort()).toEqual(["step-00000009.safetensors", "step-00000012.safetensors"]);
    expect(job.latest()?.step).toBe(12);
    job.remove();
    expect(job.latest()).toBeUndefined();
  });
});

describe("trainLora resumed from a checkpoint (stories260k)", () => {
  let cacheDir: string;
  let examples: TrainingExample[];
  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), "sy-train-resume-"));
    examples = parseTrainingData(readFileSync(FIXTURE, "utf8")).examples;
  });
  afterAll(async () => rm(cacheDir, { recursive: true, force: true }));

  it("ends with the same adapter bytes as the uninterrupted run", async () => {
    // 12 chats, batch 5: 3 steps per epoch (the last one short); checkpoints every 2 steps, so step 4 is mid-epoch.
    const request: TrainRequest = {
      modelDir: findModel("stories260k"),
      training: examples,
      validation: examples.slice(0, 4),
      seed: 3,
      cacheDir,
      threads: 1,
      checkpointEvery: 2,
      hyperparameters: { learningRate: 1e-2, maxSteps: 10, epochs: 100, batchSize: 5, evalEvery: 3, warmupRatio: 0.2, weightDecay: 0.01 },
    };
    const record = () => ({ steps: [] as TrainProgress[], epochs: [] as Omit<EpochEnd, "adapter">[], checkpoints: [] as Uint8Array[] });
    const hooks = (r: ReturnType<typeof record>) => ({
      onStep: (p: TrainProgress) => void r.steps.push({ ...p, tokensPerSecond: 0 }),
      onEpochEnd: ({ adapter: _, ...e }: EpochEnd) => void r.epochs.push(e),
      onCheckpoint: (s: TrainCheckpoint) => void r.checkpoints.push(encodeCheckpoint("job", s)),
    });
    const whole = record();
    const full = await trainLora(request, hooks(whole));
    expect(whole.checkpoints.map((b) => decodeCheckpoint(b).state.step)).toEqual([2, 4, 6, 8, 10]);
    expect(whole.epochs.map((e) => [e.epoch, e.step])).toEqual([[1, 3], [2, 6], [3, 9]]);

    const at4 = decodeCheckpoint(whole.checkpoints[1]!).state;
    expect(at4).toMatchObject({ step: 4, epoch: 1, stepInEpoch: 1, fingerprint: trainFingerprint(request) });
    expect(at4.history.map((e) => e.step)).toEqual([0, 3]);
    const rest = record();
    const resumed = await trainLora({ ...request, resume: at4 }, hooks(rest));

    expect(Buffer.from(resumed.adapter.model).equals(Buffer.from(full.adapter.model))).toBe(true);
    expect(resumed.adapter.config).toEqual(full.adapter.config);
    expect({ ...resumed, adapter: undefined }).toEqual({ ...full, adapter: undefined });
    expect(rest.steps).toEqual(whole.steps.slice(4));
    expect(rest.epochs).toEqual(whole.epochs.slice(1));
    expect(rest.checkpoints.map((b) => Buffer.from(b).toString("hex"))).toEqual(whole.checkpoints.slice(2).map((b) => Buffer.from(b).toString("hex")));
    console.log(`resume: steps ${full.steps}, best step ${full.bestStep}, valid ${full.baseValidLoss.toFixed(3)} -> ${full.bestValidLoss.toFixed(3)}; resumed at 4, same adapter bytes`);

    await expect(trainLora({ ...request, seed: 4, resume: at4 })).rejects.toThrow(/another run/);
  }, 120_000);
});
