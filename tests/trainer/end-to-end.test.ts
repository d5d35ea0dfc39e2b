/**
 * The whole fine-tuning path with the real training loop: the official `openai` client uploads the
 * made-up QA set (tests/fixtures/training/qa.jsonl), creates a job, the trainer (hosts/node/trainer.ts,
 * run in this process over the server's data dir) trains it with trainLora, publishes the adapter, and
 * chat through `model: fine_tuned_model` answers the trained questions (the base model answers none).
 * Answers are compared as prefixes: stories260k never learned its EOS token (see learning.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { trainLora } from "../../trainer/train.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

const QA = readFileSync(join(import.meta.dirname, "../fixtures/training/qa.jsonl"), "utf8");
const CHATS = QA.trim()
  .split("\n")
  .map((line) => JSON.parse(line) as { messages: Array<{ role: string; content: string }> });

let p: TestPlatform;
let client: OpenAI;
let trainer: TrainerProcess | undefined;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: (await createTenantWithKey(p, "ft-e2e")).key, maxRetries: 0 });
});
afterAll(async () => {
  await trainer?.close();
  await p.stop();
});

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function answers(model: string): Promise<number> {
  let right = 0;
  for (const chat of CHATS) {
    const question = chat.messages.find((m) => m.role === "user")!.content;
    const expected = chat.messages.find((m) => m.role === "assistant")!.content;
    const reply = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], max_tokens: 24, temperature: 0 });
    if ((reply.choices[0]!.message.content ?? "").trim().startsWith(expected)) right++;
  }
  return right;
}

describe("fine-tuning end to end with trainLora", () => {
  it("trains the uploaded chats, publishes the adapter and answers them through chat", async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from(QA), "qa.jsonl"), purpose: "fine-tune" });
    const job = await client.fineTuning.jobs.create({
      model: "stories260k",
      training_file: file.id,
      validation_file: file.id,
      suffix: "qa",
      seed: 1,
      method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 50, batch_size: 4 } } },
      // @ts-expect-error the documented extension, which the openai client passes through unchanged
      switchyard: { r: 8, alpha: 16, learning_rate: 1e-2, max_steps: 100, eval_every: 20 },
    });
    trainer = await startTrainer(p.config, trainLora, pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 100 });
    const done = await until(() => client.fineTuning.jobs.retrieve(job.id), (j) => j.status === "succeeded" || j.status === "failed", 120_000);
    // Every epoch's adapter is published as a version of "qa" (33 epochs end within 100 steps); the best one last.
    expect(done).toMatchObject({ status: "succeeded", fine_tuned_model: expect.stringMatching(/^qa@\d+$/), error: null });
    const checkpoints = [];
    for await (const c of client.fineTuning.jobs.checkpoints.list(job.id, { limit: 100 })) checkpoints.push(c);
    expect(checkpoints.length).toBeGreaterThanOrEqual(33);
    expect(done.fine_tuned_model).toBe(`qa@${checkpoints.length}`);

    const metrics = [];
    for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 100 })) if (e.type === "metrics") metrics.push(e.data as { step: number; train_loss: number; valid_loss?: number });
    expect(metrics.map((m) => m.step).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const losses = metrics.filter((m) => m.valid_loss !== undefined).sort((a, b) => a.step - b.step).map((m) => m.valid_loss!);
    expect(losses.length).toBeGreaterThanOrEqual(5); // every 20 steps
    const firstTrainLoss = metrics.find((m) => m.step === 1)!.train_loss; // the base model's loss, near enough
    expect(Math.min(...losses)).toBeLessThan(0.25 * firstTrainLoss);

    const trained = await answers("qa");
    const base = await answers("stories260k");
    console.log(`fine-tuning end to end: ${metrics.length} metrics events, train loss at step 1 ${firstTrainLoss.toFixed(3)}, best valid loss ${Math.min(...losses).toFixed(3)}; ${trained}/${CHATS.length} answered with the adapter, ${base} by the base`);
    expect(trained).toBeGreaterThanOrEqual(9);
    expect(base).toBe(0);
  }, 180_000);
});
