/**
 * The official `openai` client's fine-tuning API against the real server, with the trainer process's
 * composition (hosts/node/trainer.ts) run in this process over the same data dir and a stand-in
 * training loop; the job's adapter then answers chat through `model: fine_tuned_model`.
 */
import OpenAI, { toFile } from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../../hosts/node/trainer.ts";
import { fakeTrain } from "../../../trainer/jobs/fake-train.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { trainingJsonl } from "../../ports/files.contract.ts";
import { until } from "../../helpers/until.ts";

let p: TestPlatform;
let client: OpenAI;
let other: OpenAI;
let trainer: TrainerProcess | undefined;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: (await createTenantWithKey(p, "ft-sdk")).key, maxRetries: 0 });
  other = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: (await createTenantWithKey(p, "ft-other")).key, maxRetries: 0 });
});
afterAll(async () => {
  await trainer?.close();
  await p.stop();
});

const upload = async (n = 4) => (await client.files.create({ file: await toFile(Buffer.from(trainingJsonl(n)), "train.jsonl"), purpose: "fine-tune" })).id;

describe("openai.fineTuning against the server", () => {
  it("creates, lists, cancels, trains, follows events and checkpoints, and serves the result in chat", async () => {
    const trainingFile = await upload();
    const base = (await client.models.list()).data.find((m) => !m.id.includes("@"))!.id;

    const doomed = await client.fineTuning.jobs.create({ model: base, training_file: trainingFile });
    expect(doomed).toMatchObject({ object: "fine_tuning.job", status: "queued", training_file: trainingFile });
    expect((await client.fineTuning.jobs.cancel(doomed.id)).status).toBe("cancelled");

    const job = await client.fineTuning.jobs.create({
      model: base,
      training_file: trainingFile,
      validation_file: await upload(2),
      suffix: "sdk-bot",
      seed: 5,
      method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 1, batch_size: 2, learning_rate_multiplier: "auto" } } },
    });
    expect(await client.fineTuning.jobs.retrieve(job.id)).toEqual(job);
    const seen: string[] = [];
    for await (const j of client.fineTuning.jobs.list({ limit: 1 })) seen.push(j.id);
    expect(seen).toEqual([job.id, doomed.id]);
    await expect(other.fineTuning.jobs.retrieve(job.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    trainer = await startTrainer(p.config, fakeTrain({ steps: 4 }), pino({ level: "silent" }), { leaseMs: 5000, heartbeatMs: 500, pollMs: 50 });
    const done = await until(() => client.fineTuning.jobs.retrieve(job.id), (j) => j.status === "succeeded" || j.status === "failed");
    expect(done).toMatchObject({ status: "succeeded", fine_tuned_model: "sdk-bot@1", error: null, seed: 5 });
    expect(done.trained_tokens).toBeGreaterThan(0);
    // The extension's result (the trainer's report over the stand-in's adapter): the client passes it through.
    expect((done as unknown as { switchyard: { result: unknown } }).switchyard.result).toMatchObject({ validation_examples: 2, answered_examples: 2, best_step: 4, base: { loss: 3.1 } });
    expect((await client.fineTuning.jobs.retrieve(doomed.id)).status).toBe("cancelled");

    const events = [];
    for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 3 })) events.push(e);
    expect(events[0]!.message).toMatch(/successfully completed: sdk-bot@1/);
    expect(events[1]!.message).toMatch(/^Validation, base model -> adapter \(step 4\) over 2 example\(s\): loss 3\.1000 -> /);
    const metrics = events.filter((e) => e.type === "metrics");
    expect(metrics.map((e) => (e.data as { step: number }).step)).toEqual([4, 3, 2, 1]);
    expect(metrics[0]!.data).toMatchObject({ train_loss: 0.75, valid_loss: 0.85 });

    const checkpoints = await client.fineTuning.jobs.checkpoints.list(job.id);
    expect(checkpoints.data).toEqual([expect.objectContaining({ fine_tuned_model_checkpoint: "sdk-bot@1", fine_tuning_job_id: job.id, step_number: 4 })]);

    const chat = await client.chat.completions.create({ model: done.fine_tuned_model!, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 4 });
    expect(chat.model).toBe("sdk-bot@1");
    expect(chat.choices[0]!.message.content).toEqual(expect.any(String));
    await expect(other.chat.completions.create({ model: done.fine_tuned_model!, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("surfaces refusals as OpenAI errors: 400 for a model it cannot train, 404 for another tenant's file", async () => {
    const file = await upload(1);
    await expect(client.fineTuning.jobs.create({ model: "gpt-4o-mini", training_file: file })).rejects.toThrow(/cannot be fine-tuned here/);
    await expect(other.fineTuning.jobs.create({ model: "stories260k", training_file: file })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
