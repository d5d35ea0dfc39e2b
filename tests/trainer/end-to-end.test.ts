/**
 * The whole fine-tuning path with the real training loop: the official `openai` client uploads the
 * made-up QA set (tests/fixtures/training/qa.jsonl), creates a job, the trainer (hosts/node/trainer.ts,
 * run in this process over the server's data dir) trains it with trainLora, publishes the adapter, and
 * chat through `model: fine_tuned_model` answers the trained questions (the base model answers none).
 * Answers are compared as prefixes: stories260k never learned its EOS token (see learning.test.ts).
 * The job's `switchyard.result` puts the adapter ahead of the base model on the validation set (loss and
 * exact match of its greedy answers), and the metrics endpoint gives every step's numbers in step order.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { trainLora } from "../../trainer/train.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";
import { until } from "../helpers/until.ts";

const QA = readFileSync(join(import.meta.dirname, "../fixtures/training/qa.jsonl"), "utf8");
const CHATS = QA.trim()
  .split("\n")
  .map((line) => JSON.parse(line) as { messages: Array<{ role: string; content: string }> });

let p: TestPlatform;
let client: OpenAI;
let key: string;
let otherKey: string;
let trainer: TrainerProcess | undefined;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  key = (await createTenantWithKey(p, "ft-e2e")).key;
  otherKey = (await createTenantWithKey(p, "ft-e2e-other")).key;
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0 });
});
afterAll(async () => {
  await trainer?.close();
  await p.stop();
});

interface Scores {
  loss: number;
  perplexity: number;
  token_accuracy: number;
  rouge_l: number;
  exact_match: number;
}
interface Result {
  validation_examples: number;
  answered_examples: number;
  best_step: number;
  base: Scores;
  adapter: Scores;
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
    // Retries: the trainer shares this process's event loop, and compiling the training graph blocks it for
    // seconds, after which a keep-alive socket the poll reuses may be reset (a connection error, not an answer).
    const done = await until(() => client.fineTuning.jobs.retrieve(job.id, { maxRetries: 3 }), (j) => j.status === "succeeded" || j.status === "failed", 120_000);
    // Every epoch's adapter is published as a version of "qa" (33 epochs end within 100 steps); the best one last.
    // Once the job succeeded only the last 3 epochs' versions and the best are left (the older ones are deleted).
    expect(done).toMatchObject({ status: "succeeded", fine_tuned_model: expect.stringMatching(/^qa@\d+$/), error: null });
    const checkpoints = [];
    for await (const c of client.fineTuning.jobs.checkpoints.list(job.id, { limit: 100 })) checkpoints.push(c);
    expect(checkpoints.length).toBeGreaterThanOrEqual(3);
    expect(checkpoints.length).toBeLessThanOrEqual(4);
    const versions = checkpoints.map((c) => Number(c.fine_tuned_model_checkpoint.split("@")[1]));
    expect(Math.max(...versions)).toBeGreaterThanOrEqual(33);
    expect(done.fine_tuned_model).toBe(`qa@${Math.max(...versions)}`);

    const metrics = [];
    for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 100 })) if (e.type === "metrics") metrics.push(e.data as { step: number; train_loss: number; valid_loss?: number });
    expect(metrics.map((m) => m.step).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const losses = metrics.filter((m) => m.valid_loss !== undefined).sort((a, b) => a.step - b.step).map((m) => m.valid_loss!);
    expect(losses.length).toBeGreaterThanOrEqual(5); // every 20 steps
    const firstTrainLoss = metrics.find((m) => m.step === 1)!.train_loss; // the base model's loss, near enough
    expect(Math.min(...losses)).toBeLessThan(0.25 * firstTrainLoss);

    // The result: base model vs the served (best) adapter on the validation set (the same 12 chats).
    const result = (done as unknown as { switchyard: { result: Result } }).switchyard.result;
    expect(result).toMatchObject({ validation_examples: CHATS.length, answered_examples: CHATS.length });
    expect(result.adapter.loss).toBeLessThan(0.25 * result.base.loss);
    expect(result.adapter.perplexity).toBeCloseTo(Math.exp(result.adapter.loss), 6);
    expect(result.base.perplexity).toBeCloseTo(Math.exp(result.base.loss), 6);
    expect(result.adapter.token_accuracy).toBeGreaterThan(result.base.token_accuracy);
    expect(result.adapter.exact_match).toBeGreaterThan(result.base.exact_match);
    expect(result.adapter.rouge_l).toBeGreaterThan(result.base.rouge_l);
    const [checkpoint] = (await client.fineTuning.jobs.checkpoints.list(job.id)).data;
    expect(result.best_step).toBe(checkpoint!.step_number);

    // The series: every step once, in order, the same numbers as the events; the best step's valid loss is the adapter's.
    const series = await (await p.call("GET", `/v1/fine_tuning/jobs/${job.id}/metrics`, { key })).json();
    expect(series.step).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const byStep = new Map(metrics.map((m) => [m.step, m]));
    expect(series.train_loss).toEqual(series.step.map((s: number) => byStep.get(s)!.train_loss));
    expect(series.valid_loss.filter((v: number | null) => v !== null)).toEqual(losses);
    expect(series.valid_loss[result.best_step - 1]).toBe(result.adapter.loss);
    expect((await p.call("GET", `/v1/fine_tuning/jobs/${job.id}/metrics`, { key: otherKey })).status).toBe(404);

    const trained = await answers("qa");
    const base = await answers("stories260k");
    console.log(`fine-tuning end to end: ${metrics.length} metrics events, train loss at step 1 ${firstTrainLoss.toFixed(3)}, best valid loss ${Math.min(...losses).toFixed(3)}; ${trained}/${CHATS.length} answered with the adapter, ${base} by the base; result ${JSON.stringify(result)}`);
    expect(trained).toBeGreaterThanOrEqual(9);
    expect(base).toBe(0);
  }, 180_000);
});
