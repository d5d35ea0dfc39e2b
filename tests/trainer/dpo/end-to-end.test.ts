/**
 * A DPO job through the official `openai` client with the real loop (trainDpo, run by the trainer host in
 * this process): the preference set (tests/fixtures/training/preferences.jsonl) uploaded with purpose
 * fine-tune (24 pairs to train on, 8 held out to validate), `method: {type: "dpo", dpo: {hyperparameters:
 * {beta}}}`; the job succeeds, shows its method back as OpenAI does, logs TRL's reward metrics per step,
 * publishes the best adapter, and its summary event and its result (`switchyard.result`, reference vs
 * adapter per validation pair) say the adapter prefers the chosen answers on ≥ 90% of the validation pairs. A bad preference file is refused at upload with its line numbers, and a
 * file of the wrong kind for the method at job creation.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../../hosts/node/trainer.ts";
import { trainLora } from "../../../trainer/train.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { until } from "../../helpers/until.ts";

const LINES = readFileSync(join(import.meta.dirname, "../../fixtures/training/preferences.jsonl"), "utf8").trim().split("\n");
const QA = readFileSync(join(import.meta.dirname, "../../fixtures/training/qa.jsonl"), "utf8");

let p: TestPlatform;
let client: OpenAI;
let trainer: TrainerProcess | undefined;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: (await createTenantWithKey(p, "dpo-e2e")).key, maxRetries: 0 });
});
afterAll(async () => {
  await trainer?.close();
  await p.stop();
});

const upload = async (text: string, name: string) => client.files.create({ file: await toFile(Buffer.from(text), name), purpose: "fine-tune" });

describe("a DPO fine-tuning job end to end", () => {
  it("refuses a bad preference file with line numbers, and files of the wrong kind for the method", async () => {
    const wrongRole = JSON.stringify({ input: { messages: [{ role: "user", content: "Hi" }] }, preferred_output: [{ role: "user", content: "x" }], non_preferred_output: [{ role: "assistant", content: "y" }] });
    const bad = [LINES[0], '{"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []}', wrongRole].join("\n");
    const refused = await upload(bad, "bad.jsonl").then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    const message = (refused as InstanceType<typeof OpenAI.BadRequestError>).message;
    expect(message).toContain("line 2: \"input.messages\" is empty");
    expect(message).toContain("line 3: preferred_output: the message's role is user, expected assistant");
    expect((await client.files.list()).data).toHaveLength(0);

    const chats = await upload(QA, "qa.jsonl");
    const pairs = await upload(LINES.join("\n"), "prefs.jsonl");
    const create = (file: string, type: "supervised" | "dpo") => client.fineTuning.jobs.create({ model: "stories260k", training_file: file, method: type === "dpo" ? { type, dpo: {} } : { type, supervised: {} } });
    for (const [file, type] of [[chats.id, "dpo"], [pairs.id, "supervised"]] as const) {
      const e = await create(file, type).then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect((e as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("invalid_file_format");
    }
    const ipoOnSft = await client.fineTuning.jobs
      // @ts-expect-error the documented extension
      .create({ model: "stories260k", training_file: chats.id, switchyard: { loss_type: "ipo" } })
      .then(() => undefined, (x: unknown) => x);
    expect(ipoOnSft).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it("trains on preference pairs, shows method dpo, logs TRL's rewards, and the adapter prefers the chosen answers", async () => {
    const training = await upload(LINES.slice(0, 24).join("\n"), "train.jsonl");
    const validation = await upload(LINES.slice(24).join("\n"), "valid.jsonl");
    const job = await client.fineTuning.jobs.create({
      model: "stories260k",
      training_file: training.id,
      validation_file: validation.id,
      suffix: "happy",
      seed: 1,
      method: { type: "dpo", dpo: { hyperparameters: { beta: 0.1, batch_size: 8, n_epochs: 20 } } },
      // @ts-expect-error the documented extension, which the openai client passes through unchanged
      switchyard: { r: 8, alpha: 16, learning_rate: 2e-3, max_steps: 40, eval_every: 10, loss_type: "sigmoid" },
    });
    expect(job.method).toEqual({ type: "dpo", dpo: { hyperparameters: { beta: 0.1, batch_size: 8, n_epochs: 20, learning_rate_multiplier: "auto" } } });
    trainer = await startTrainer(p.config, trainLora, pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 100 });
    const done = await until(() => client.fineTuning.jobs.retrieve(job.id, { maxRetries: 3 }), (j) => j.status === "succeeded" || j.status === "failed", 150_000);
    expect(done).toMatchObject({ status: "succeeded", fine_tuned_model: expect.stringMatching(/^happy@\d+$/), error: null, method: job.method });
    expect((done as unknown as { switchyard: Record<string, unknown> }).switchyard).toMatchObject({ loss_type: "sigmoid", learning_rate: 2e-3 });
    // The job's result: the reference vs the adapter on the 8 validation pairs, each with its margin and answers.
    const result = (done as unknown as { switchyard: { result: { preferred_share: number; pairs: Array<{ margin: number; adapter: string | null }> } } }).switchyard.result;
    expect(result).toMatchObject({ method: "dpo", validation_pairs: 8, answered_pairs: 8, reference: { loss: expect.closeTo(Math.log(2), 5) } });
    expect(result.preferred_share).toBeGreaterThanOrEqual(0.9);
    expect(result.pairs.every((x) => typeof x.margin === "number" && typeof x.adapter === "string")).toBe(true);

    const events = [];
    for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 100 })) events.push(e);
    const metrics = events.filter((e) => e.type === "metrics").map((e) => e.data as Record<string, number>);
    expect(metrics.map((m) => m.step).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const m of metrics) expect(Object.keys(m)).toEqual(expect.arrayContaining(["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "train_loss"]));
    const evaluated = metrics.filter((m) => m.valid_loss !== undefined);
    expect(evaluated.map((m) => m.step).sort((a, b) => a - b)).toEqual([10, 20, 30, 40]);
    for (const m of evaluated) expect(m["eval_rewards/margins"]).toBeTypeOf("number");
    expect(events.some((e) => e.message.startsWith("Validation, reference -> adapter (step "))).toBe(true);
    const summary = events.find((e) => e.message.startsWith("DPO validation:"))!;
    const data = summary.data as { positive_margins: number; pairs: number; valid_loss: number; base_valid_loss: number };
    console.log(`DPO end to end: ${summary.message}`);
    expect(data.pairs).toBe(8);
    expect(data.positive_margins).toBeGreaterThanOrEqual(8 * 0.9);
    expect(data.valid_loss).toBeLessThan(data.base_valid_loss);
    // The series for charts has TRL's columns too, aligned with the steps.
    const series = (await client.get(`/fine_tuning/jobs/${job.id}/metrics`)) as Record<string, (number | null)[]>;
    expect(series.step).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(series["rewards/margins"]).toHaveLength(40);
    expect(series["rewards/margins"]!.every((v) => typeof v === "number")).toBe(true);
    expect(series["eval_rewards/accuracies"]!.filter((v) => v !== null)).toHaveLength(4);
    const reply = await client.chat.completions.create({ model: done.fine_tuned_model!, messages: [{ role: "user", content: "How did Kate feel at home?" }], max_tokens: 8, temperature: 0 });
    expect(reply.model).toBe(done.fine_tuned_model);
  }, 200_000);
});
