/**
 * A prompt-tuning job end to end, with the real loop (trainPromptTuning through the trainer host in this
 * process): `method.supervised` with `adapter_type: "prompt_tuning"` on the QA set (validated on the
 * same chats, as the learning test: the prompt alone must move the loss). The job succeeds, shows its
 * method back, logs train and validation losses per step, publishes a prompt-tuning adapter that the
 * adapters list shows as such, and greedy chat with it differs from the base model's. Bad
 * prompt-tuning hyperparameters, LoRA settings beside them and continuing a LoRA adapter are 400s.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { trainLora } from "../../trainer/train.ts";
import { STORIES } from "../helpers/adapters.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";
import { until } from "../helpers/until.ts";

const QA = readFileSync(join(import.meta.dirname, "../fixtures/training/qa.jsonl"), "utf8");
const QUESTION = "What is the name of the red dog?";

let p: TestPlatform;
let client: OpenAI;
let key: string;
let trainer: TrainerProcess | undefined;
let fileId: string;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  key = (await createTenantWithKey(p, "pt-job")).key;
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0 });
  fileId = (await client.files.create({ file: await toFile(Buffer.from(QA), "qa.jsonl"), purpose: "fine-tune" })).id;
});
afterAll(async () => {
  await trainer?.close();
  await p.stop();
});

const create = (hyperparameters: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  p.call("POST", "/v1/fine_tuning/jobs", { key, json: { model: "stories260k", training_file: fileId, method: { type: "supervised", supervised: { hyperparameters } }, ...extra } });

const greedy = async (model: string) => (await client.chat.completions.create({ model, messages: [{ role: "user", content: QUESTION }], max_tokens: 12, temperature: 0 })).choices[0]!.message.content;

describe("a prompt-tuning fine-tuning job", () => {
  it("refuses bad prompt-tuning hyperparameters with 400s naming the field", async () => {
    const at = "method.supervised.hyperparameters";
    const cases: Array<[Record<string, unknown>, Record<string, unknown>, string]> = [
      [{ adapter_type: "prompt_tuning" }, { switchyard: { r: 8 } }, "switchyard.r"],
      [{ adapter_type: "prompt_tuning" }, { switchyard: { target_modules: ["q_proj"] } }, "switchyard.target_modules"],
      [{ num_virtual_tokens: 4 }, {}, `${at}.num_virtual_tokens`],
      [{ adapter_type: "prompt_tuning", prompt_tuning_init: "text" }, {}, `${at}.prompt_tuning_init_text`],
      [{ adapter_type: "prompt_tuning", prompt_tuning_init: "random", prompt_tuning_init_text: "Hi" }, {}, `${at}.prompt_tuning_init_text`],
      [{ adapter_type: "prompt_tuning", num_virtual_tokens: 0 }, {}, `${at}.num_virtual_tokens`],
      [{ adapter_type: "prefix" }, {}, `${at}.adapter_type`],
    ];
    for (const [hyperparameters, extra, param] of cases) {
      const res = await create(hyperparameters, extra);
      expect(res.status, JSON.stringify(hyperparameters)).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    }
    const dpo = await p.call("POST", "/v1/fine_tuning/jobs", { key, json: { model: "stories260k", training_file: fileId, method: { type: "dpo", dpo: { hyperparameters: { adapter_type: "prompt_tuning" } } } } });
    expect(dpo.status).toBe(400);
    expect(((await dpo.json()) as { error: { param: string } }).error.param).toBe("method.dpo.hyperparameters.adapter_type");
    // continuing a LoRA adapter as a prompt-tuning job
    const lora = randomPeftAdapter(STORIES, { rank: 2 }).files;
    const form = new FormData();
    form.append("name", "some-lora");
    form.append("adapter_config", new Blob([new Uint8Array(lora.config)]), "adapter_config.json");
    form.append("adapter_model", new Blob([new Uint8Array(lora.model)]), "adapter_model.safetensors");
    expect((await p.call("POST", "/v1/adapters", { key, body: form })).status).toBe(201);
    const continued = await create({ adapter_type: "prompt_tuning" }, { model: "stories260k:some-lora" });
    expect(continued.status).toBe(400);
    expect(((await continued.json()) as { error: { param: string; code: string } }).error).toMatchObject({ param: "model", code: "adapter_type_conflict" });
    expect((await client.fineTuning.jobs.list()).data).toHaveLength(0);
  });

  it("trains a prompt, logs its losses, and publishes a prompt-tuning adapter chat serves", async () => {
    const hyperparameters = { adapter_type: "prompt_tuning", num_virtual_tokens: 4, prompt_tuning_init_text: "Answer the question with the fact.", n_epochs: 10, batch_size: 4 };
    const res = await create(hyperparameters, { validation_file: fileId, suffix: "pt", seed: 1, switchyard: { learning_rate: 0.05, max_steps: 20, eval_every: 5 } });
    expect(res.status).toBe(200);
    const job = (await res.json()) as { id: string; method: unknown };
    expect(job.method).toEqual({ type: "supervised", supervised: { hyperparameters: { ...hyperparameters, learning_rate_multiplier: "auto" } } });
    trainer = await startTrainer(p.config, trainLora, pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 100 });
    const done = await until(() => client.fineTuning.jobs.retrieve(job.id, { maxRetries: 3 }), (j) => j.status === "succeeded" || j.status === "failed", 120_000);
    expect(done).toMatchObject({ status: "succeeded", error: null, fine_tuned_model: expect.stringMatching(/^pt@\d+$/) });

    const events = [];
    for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 100 })) events.push(e);
    const metrics = events.filter((e) => e.type === "metrics").map((e) => e.data as Record<string, number>);
    expect(metrics.map((m) => m.step).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const m of metrics) expect(m.train_loss).toBeTypeOf("number");
    expect(metrics.filter((m) => m.valid_loss !== undefined).map((m) => m.step).sort((a, b) => a - b)).toEqual([5, 10, 15, 20]);
    const summary = events.find((e) => e.message.startsWith("Prompt tuning validation:"))!;
    console.log(`prompt-tuning job: ${summary.message}`);
    const data = summary.data as { valid_loss: number; base_valid_loss: number; best_step: number };
    expect(data.valid_loss).toBeLessThan(data.base_valid_loss);
    expect(data.best_step).toBeGreaterThan(0);

    const adapters = (await (await p.call("GET", "/v1/adapters", { key })).json()) as { data: Array<{ name: string; adapter_type: string; num_virtual_tokens: number }> };
    expect(adapters.data.find((a) => a.name === "pt")).toMatchObject({ adapter_type: "prompt_tuning", num_virtual_tokens: 4 });
    const [base, tuned] = [await greedy("stories260k"), await greedy(done.fine_tuned_model!)];
    console.log(`prompt-tuning job: base ${JSON.stringify(base)}, tuned ${JSON.stringify(tuned)}`);
    expect(tuned).not.toBe(base);
  }, 150_000);
});
