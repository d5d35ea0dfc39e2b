/** The fine-tuning routes over StoreTrainer (stand-in training loop), behind a stand-in for auth (tenant from `x-tenant`) and the real error renderer; bodies checked against OpenAI's schemas. */
import type { FineTuningResult } from "../../../ports/trainer.ts";
import type { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppEnv } from "../../../edge/env.ts";
import { fineTuningRoutes } from "../../../edge/routes/fine-tuning.ts";
import { specErrors } from "../../helpers/openai-spec.ts";
import { BASE, openTestJobs, type TestJobs } from "../../trainer/jobs/helpers.ts";
import { tenantApp } from "../../helpers/tenant-app.ts";
import { appendEvent } from "../../../trainer/jobs/events.ts";
import { reportTraining } from "../../../trainer/report.ts";

let t: TestJobs;
let app: Hono<AppEnv>;

beforeEach(async () => {
  t = await openTestJobs();
  app = tenantApp("/v1/fine_tuning", fineTuningRoutes(t.trainer));
});
afterEach(async () => {
  await t.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const call = async (method: string, path: string, json?: unknown, tenant = "t_acme") => {
  const init: RequestInit = { method, headers: { "x-tenant": tenant, ...(json === undefined ? {} : { "content-type": "application/json" }) } };
  if (json !== undefined) init.body = JSON.stringify(json);
  const res = await app.request(`/v1/fine_tuning${path}`, init);
  return { status: res.status, json: (await res.json()) as Json };
};
const create = async (body: Record<string, unknown> = {}, tenant = "t_acme") => call("POST", "/jobs", { model: BASE, training_file: await t.upload(tenant), ...body }, tenant);

describe("POST /v1/fine_tuning/jobs", () => {
  it("queues a job and answers OpenAI's FineTuningJob, hyperparameters from `method` with 'auto' left as is", async () => {
    const res = await create({ method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 2, batch_size: "auto" } } }, suffix: "bot", seed: 3, metadata: { k: "v" } });
    expect(res.status).toBe(200);
    expect(specErrors("FineTuningJob", res.json)).toEqual([]);
    expect(res.json).toMatchObject({
      object: "fine_tuning.job",
      model: BASE,
      status: "queued",
      organization_id: "t_acme",
      hyperparameters: { n_epochs: 2, batch_size: "auto", learning_rate_multiplier: "auto" },
      method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 2 } } },
      seed: 3,
      metadata: { k: "v" },
      user_provided_suffix: "bot",
      fine_tuned_model: null,
      trained_tokens: null,
      result_files: [],
    });
    expect(res.json.id).toMatch(/^ftjob_/);
  });

  it("takes the legacy top-level hyperparameters and the `switchyard` extension", async () => {
    const res = await create({ hyperparameters: { learning_rate_multiplier: 2 }, switchyard: { r: 16, alpha: 32, dropout: 0.05, target_modules: ["q_proj"], warmup_ratio: 0.1, max_steps: 9, early_stopping: { patience: 3 } } });
    expect(res.status).toBe(200);
    expect(res.json.hyperparameters.learning_rate_multiplier).toBe(2);
    expect(res.json.switchyard).toEqual({ r: 16, alpha: 32, dropout: 0.05, target_modules: ["q_proj"], warmup_ratio: 0.1, max_steps: 9, early_stopping: { patience: 3 } });
    expect((await t.trainer.get("t_acme", res.json.id)).hyperparameters).toEqual({ learningRateMultiplier: 2, rank: 16, alpha: 32, dropout: 0.05, targetModules: ["q_proj"], warmupRatio: 0.1, maxSteps: 9, patience: 3 });
  });

  it("takes `early_stopping: false` (or `{enabled: false}`) and `packing`, and shows them back as given", async () => {
    const off = await create({ switchyard: { early_stopping: false, packing: true } });
    expect(off.status).toBe(200);
    expect(off.json.switchyard).toEqual({ early_stopping: false, packing: true });
    expect((await t.trainer.get("t_acme", off.json.id)).hyperparameters).toEqual({ earlyStopping: false, packing: true });
    const object = await create({ switchyard: { early_stopping: { enabled: false, patience: 2 }, packing: "auto" } });
    expect(object.json.switchyard).toEqual({ early_stopping: { enabled: false, patience: 2 }, packing: "auto" });
    expect((await t.trainer.get("t_acme", object.json.id)).hyperparameters).toEqual({ earlyStopping: false, patience: 2, packing: "auto" });
  });

  it("refuses bad bodies with 400 naming the field, and another tenant's file with 404", async () => {
    const bad: Array<[Record<string, unknown>, string, string]> = [
      [{ model: "gpt-4o-mini" }, "model", "model_not_available"],
      [{ method: { type: "reinforcement" } }, "method.type", "unsupported_method"],
      [{ method: { type: "dpo" } }, "training_file", "invalid_file_format"], // the file holds chats, not preference pairs
      [{ method: { type: "dpo", dpo: { hyperparameters: { beta: 0 } } } }, "method.dpo.hyperparameters.beta", "invalid_value"],
      [{ switchyard: { loss_type: "ipo" } }, "switchyard.loss_type", "invalid_hyperparameters"],
      [{ hyperparameters: { n_epochs: 0 } }, "hyperparameters.n_epochs", "invalid_value"],
      [{ switchyard: { rank: 8 } }, "switchyard", "invalid_value"],
      [{ switchyard: { dropout: 1 } }, "switchyard.dropout", "invalid_value"],
      [{ switchyard: { packing: "yes" } }, "switchyard.packing", "invalid_value"],
      [{ switchyard: { early_stopping: { patience: 0 } } }, "switchyard.early_stopping.patience", "invalid_value"],
      [{ switchyard: { target_modules: ["lm_head"] } }, "switchyard.target_modules", "invalid_target_modules"],
      [{ suffix: "has space" }, "suffix", "invalid_suffix"],
    ];
    for (const [body, param, code] of bad) {
      const res = await create(body);
      expect({ body, status: res.status, param: res.json.error.param, code: res.json.error.code }).toEqual({ body, status: 400, param, code });
    }
    const unknownAdapter = await create({ model: `${BASE}:mine` });
    expect({ status: unknownAdapter.status, param: unknownAdapter.json.error.param, code: unknownAdapter.json.error.code }).toEqual({ status: 404, param: "model", code: "model_not_found" });
    const theirs = await t.upload("t_globex");
    const res = await call("POST", "/jobs", { model: BASE, training_file: theirs });
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ param: "training_file", code: "file_not_found" });
    expect((await call("POST", "/jobs", { model: BASE })).json.error.param).toBe("training_file");
  });
});

describe("jobs, events and checkpoints", () => {
  it("lists in cursor pages, retrieves, and hides other tenants' jobs (404)", async () => {
    const a = (await create()).json;
    const b = (await create()).json;
    const page = await call("GET", "/jobs?limit=1");
    expect(specErrors("ListPaginatedFineTuningJobsResponse", page.json)).toEqual([]);
    expect(page.json).toMatchObject({ object: "list", data: [{ id: b.id }], has_more: true });
    expect((await call("GET", `/jobs?limit=1&after=${b.id}`)).json).toMatchObject({ data: [{ id: a.id }], has_more: false });
    expect((await call("GET", `/jobs/${a.id}`)).json).toEqual(a);
    expect((await call("GET", `/jobs/${a.id}`, undefined, "t_globex")).status).toBe(404);
    expect((await call("GET", "/jobs", undefined, "t_globex")).json.data).toEqual([]);
    expect((await call("GET", "/jobs?after=ftjob_nope")).status).toBe(400);
  });

  it("cancels a queued job, then refuses to cancel it again (400)", async () => {
    const job = (await create()).json;
    const res = await call("POST", `/jobs/${job.id}/cancel`);
    expect(res.status).toBe(200);
    expect(specErrors("FineTuningJob", res.json)).toEqual([]);
    expect(res.json.status).toBe("cancelled");
    expect((await call("POST", `/jobs/${job.id}/cancel`)).json.error.code).toBe("job_not_cancellable");
    expect((await call("POST", `/jobs/${job.id}/cancel`, undefined, "t_globex")).status).toBe(404);
  });

  it("shows a finished job's events (metrics typed) and its checkpoint in OpenAI's shapes", async () => {
    const job = (await create()).json;
    await t.drain();
    const done = (await call("GET", `/jobs/${job.id}`)).json;
    expect(specErrors("FineTuningJob", done)).toEqual([]);
    expect(done).toMatchObject({ status: "succeeded", fine_tuned_model: expect.stringMatching(/^ft-.+@1$/), error: null });
    expect(done.trained_tokens).toBeGreaterThan(0);

    const events = await call("GET", `/jobs/${job.id}/events?limit=100`);
    expect(specErrors("ListFineTuningJobEventsResponse", events.json)).toEqual([]);
    const metrics = events.json.data.filter((e: Json) => e.type === "metrics");
    expect(metrics.length).toBe(3);
    expect(metrics[0]).toMatchObject({ object: "fine_tuning.job.event", level: "info", data: { step: 3, total_steps: 3 } });
    const first = await call("GET", `/jobs/${job.id}/events?limit=1`);
    expect(first.json.has_more).toBe(true);
    expect((await call("GET", `/jobs/${job.id}/events?after=nope`)).status).toBe(400);

    const checkpoints = await call("GET", `/jobs/${job.id}/checkpoints`);
    expect(specErrors("ListFineTuningJobCheckpointsResponse", checkpoints.json)).toEqual([]);
    expect(checkpoints.json.data).toEqual([expect.objectContaining({ object: "fine_tuning.job.checkpoint", fine_tuning_job_id: job.id, fine_tuned_model_checkpoint: done.fine_tuned_model, step_number: 3 })]);
    expect((await call("GET", `/jobs/${job.id}/checkpoints`, undefined, "t_globex")).status).toBe(404);
  });
});

describe("the job's result and the metrics series", () => {
  it("shows a succeeded job's result under `switchyard`, base and adapter side by side, still OpenAI's FineTuningJob", async () => {
    const job = (await create({ validation_file: await t.upload("t_acme", 2), switchyard: { r: 4 } })).json;
    expect(job.switchyard).toEqual({ r: 4 });
    await t.drain(undefined, reportTraining);
    const done = (await call("GET", `/jobs/${job.id}`)).json;
    expect(specErrors("FineTuningJob", done)).toEqual([]);
    const scores = { loss: expect.any(Number), perplexity: expect.any(Number), token_accuracy: expect.any(Number), rouge_l: expect.any(Number), exact_match: expect.any(Number) };
    expect(done.switchyard).toEqual({ r: 4, result: { validation_examples: 2, answered_examples: 2, best_step: 3, base: scores, adapter: scores } });
    const stored = (await t.trainer.get("t_acme", job.id)).result as FineTuningResult;
    expect(done.switchyard.result.adapter).toEqual({ loss: stored.adapter.loss, perplexity: stored.adapter.perplexity, token_accuracy: stored.adapter.tokenAccuracy, rouge_l: stored.adapter.rougeL, exact_match: stored.adapter.exactMatch });
    expect((await call("GET", "/jobs")).json.data[0].switchyard.result).toEqual(done.switchyard.result);
  });

  it("answers every logged step's metrics as columns in step order (a step logged twice: its latest), and 404 to another tenant", async () => {
    const job = (await create()).json;
    const empty = await call("GET", `/jobs/${job.id}/metrics`);
    expect(empty).toEqual({ status: 200, json: { object: "fine_tuning.job.metrics", fine_tuning_job_id: job.id, step: [], train_loss: [], valid_loss: [], valid_mean_token_accuracy: [], learning_rate: [], grad_norm: [], tokens_per_second: [] } });
    await t.drain();
    // A restarted job logs its first steps again: the series keeps the later event of each.
    await appendEvent(t.store.db, job.id, { type: "metrics", message: "Step 1/3 again", data: { step: 1, total_steps: 3, train_loss: 2.5, learning_rate: 0.001, grad_norm: 0.5, tokens_per_second: 900 } }, Date.now());
    const res = await call("GET", `/jobs/${job.id}/metrics`);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: "fine_tuning.job.metrics", fine_tuning_job_id: job.id, step: [1, 2, 3] });
    // The stand-in's steps: train loss 3/step, no validation file (so no valid loss), accuracy 1 - 1/(step + 1).
    expect(res.json.train_loss).toEqual([2.5, 1.5, 1]);
    expect(res.json.valid_loss).toEqual([null, null, null]);
    expect(res.json.valid_mean_token_accuracy).toEqual([null, 1 - 1 / 3, 1 - 1 / 4]);
    expect(res.json.grad_norm).toEqual([0.5, 1 / 2, 1 / 3]);
    expect(res.json.tokens_per_second).toEqual([900, 1000, 1000]);
    expect(res.json.learning_rate).toHaveLength(3);
    expect((await call("GET", `/jobs/${job.id}/metrics`, undefined, "t_globex")).status).toBe(404);
    expect((await call("GET", "/jobs/ftjob_nope/metrics")).json.error.code).toBe("fine_tuning_job_not_found");
  });
});
