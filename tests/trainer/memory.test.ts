/**
 * The out-of-memory check (trainer/memory.ts): the estimate's growth with batch and sequence length, a
 * job over a small configured limit failing before training with code out_of_memory and a message
 * naming the micro-batch, the estimate, the limit and what to lower, through trainLora and the job
 * runner; an onnxruntime allocation failure mapped to the same error.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PlaneError } from "../../ports/errors.ts";
import { loadConfig } from "../../hosts/node/config.ts";
import { parseTrainingData } from "../../services/files/training-data.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { LORA_TARGETS } from "../../services/model/lora-layout.ts";
import { runJob } from "../../trainer/jobs/runner.ts";
import { asOutOfMemory, checkStepMemory, estimateStepBytes, memoryLimitBytes, type StepShape } from "../../trainer/memory.ts";
import { trainLora } from "../../trainer/train.ts";
import { findModel } from "../helpers/model-path.ts";
import { BASE, openTestJobs, type TestJobs } from "./jobs/helpers.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");

describe("the step memory estimate", () => {
  const shape = (batch: number, seq: number): StepShape => ({ batch, seq, targets: LORA_TARGETS, rank: 8, dropout: false, weightBytes: 0 });

  it("grows with the micro-batch, faster than linearly with the sequence (attention), and with dropout", async () => {
    const c = await loadDecoderConfig(findModel("stories260k"));
    const base = estimateStepBytes(c, shape(4, 128));
    expect(estimateStepBytes(c, shape(8, 128))).toBeCloseTo(2 * base, -3);
    expect(estimateStepBytes(c, shape(4, 256))).toBeGreaterThan(2.5 * base);
    expect(estimateStepBytes(c, { ...shape(4, 128), dropout: true })).toBeGreaterThan(base);
    expect(estimateStepBytes(c, shape(8, 256)) / 2 ** 20).toBeGreaterThan(100); // stories260k at T=256, B=8: hundreds of MiB
    expect(() => checkStepMemory(c, shape(8, 256), 1)).toThrow(/Out of memory/);
    expect(() => checkStepMemory(c, shape(1, 8), 4096)).not.toThrow();
    expect(memoryLimitBytes(64)).toEqual({ bytes: 64 << 20, source: "SWITCHYARD_TRAINER_MEMORY_MB" });
    expect(memoryLimitBytes().bytes).toBeGreaterThan(0);
  });

  it("maps an onnxruntime allocation failure to out_of_memory and leaves other errors alone", async () => {
    const c = await loadDecoderConfig(findModel("stories260k"));
    const mapped = asOutOfMemory(new Error("Non-zero status code returned while running MatMul node. std::bad_alloc"), c, shape(8, 256), 512);
    expect(mapped).toBeInstanceOf(PlaneError);
    expect((mapped as PlaneError).code).toBe("out_of_memory");
    expect((mapped as PlaneError).message).toMatch(/could not allocate memory \(.*bad_alloc\).*8 sequences × 256 tokens.*limit of 512 MiB/);
    const other = new Error("shape mismatch");
    expect(asOutOfMemory(other, c, shape(8, 256))).toBe(other);
  });

  it("SWITCHYARD_TRAINER_MEMORY_MB configures the limit", () => {
    expect(loadConfig({ SWITCHYARD_TRAINER_MEMORY_MB: "2048" }).trainerMemoryMb).toBe(2048);
    expect(loadConfig({}, ["--trainer-memory-mb", "64"]).trainerMemoryMb).toBe(64);
    expect(loadConfig({}).trainerMemoryMb).toBeUndefined();
  });
});

describe("a job whose micro-batch cannot fit", () => {
  let t: TestJobs;
  beforeEach(async () => {
    t = await openTestJobs();
  });
  afterEach(async () => t.close());

  it("fails before training with a message naming the batch, the estimate, the limit and what to lower", async () => {
    const examples = parseTrainingData(readFileSync(FIXTURE, "utf8")).examples;
    const error = await trainLora({ modelDir: findModel("stories260k"), training: examples, validation: examples, seed: 1, memoryLimitMb: 1, hyperparameters: { batchSize: 4 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlaneError);
    expect((error as PlaneError).code).toBe("out_of_memory");
    expect((error as PlaneError).message).toMatch(/micro-batch of 4 sequences × \d+ tokens needs an estimated [\d,]+ MiB for one step, over the limit of 1 MiB \(SWITCHYARD_TRAINER_MEMORY_MB\)\. Lower batch_size/);
  });

  it("the runner records it as the job's error, code out_of_memory", async () => {
    const job = await t.trainer.submit({ tenantId: "t_acme", model: BASE, trainingFile: await t.upload("t_acme", 4) });
    const queue = t.queue("w");
    const claimed = (await queue.claim())!;
    expect(await runJob(claimed, { ...t.deps(queue, trainLora), memoryLimitMb: 1 })).toBe("failed");
    const failed = await t.trainer.get("t_acme", job.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "out_of_memory", message: expect.stringMatching(/^Out of memory: a training micro-batch of \d+ sequences/) });
  });
});
