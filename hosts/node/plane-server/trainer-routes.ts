/**
 * The Trainer port served over HTTP (the other side of clients/trainer.ts): jobs per tenant, their
 * events, checkpoints and metrics series. A submit's body is the FineTuningJobRequest without the
 * tenant (it is in the path), its shape checked here and its meaning by the plane (StoreTrainer).
 */
import type { Context, Hono } from "hono";
import { z } from "zod";
import type { Page, Trainer } from "../../../ports/trainer.ts";
import { invalidNodeRequest, jsonBody, parseWire } from "./node-app.ts";

const Hyperparameters = z
  .object({
    method: z.enum(["supervised", "dpo"]), adapterType: z.enum(["lora", "prompt_tuning"]), numVirtualTokens: z.number().int(),
    promptTuningInit: z.enum(["text", "random"]), promptTuningInitText: z.string(), beta: z.number(), lossType: z.enum(["sigmoid", "ipo"]),
    nEpochs: z.number().int(), batchSize: z.number().int(), learningRateMultiplier: z.number(), learningRate: z.number(),
    rank: z.number().int(), alpha: z.number(), dropout: z.number(), targetModules: z.array(z.string()), warmupRatio: z.number(),
    weightDecay: z.number(), maxSteps: z.number().int(), evalEvery: z.number().int(), patience: z.number().int(),
    earlyStopping: z.boolean(), packing: z.union([z.literal("auto"), z.boolean()]),
  })
  .partial()
  .strict();

const Submit = z.object({
  model: z.string(),
  trainingFile: z.string(),
  validationFile: z.string().optional(),
  hyperparameters: Hyperparameters.optional(),
  suffix: z.string().optional(),
  seed: z.number().int().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
});

const Limit = z.coerce.number().int().min(1);

/** `?limit=&after=` as a Page. */
export function pageOf(c: Context): Page {
  const limit = c.req.query("limit");
  const parsed = limit === undefined ? undefined : Limit.safeParse(limit);
  if (parsed && !parsed.success) throw invalidNodeRequest("limit is a positive integer.", "limit");
  return { limit: parsed?.data, after: c.req.query("after") };
}

export function mountTrainer(app: Hono, trainer: () => Trainer, ensureTenant: (id: string) => void): void {
  const jobs = "/v1/tenants/:tenant/fine-tuning/jobs";
  app.post(jobs, async (c) => {
    const body = parseWire(Submit, await jsonBody(c));
    const tenantId = c.req.param("tenant");
    ensureTenant(tenantId);
    return c.json(await trainer().submit({ ...body, tenantId }), 201);
  });
  app.get(jobs, async (c) => c.json(await trainer().list(c.req.param("tenant"), pageOf(c))));
  app.get(`${jobs}/:id`, async (c) => c.json(await trainer().get(c.req.param("tenant"), c.req.param("id"))));
  app.post(`${jobs}/:id/cancel`, async (c) => c.json(await trainer().cancel(c.req.param("tenant"), c.req.param("id"))));
  app.get(`${jobs}/:id/events`, async (c) => c.json(await trainer().events(c.req.param("tenant"), c.req.param("id"), pageOf(c))));
  app.get(`${jobs}/:id/checkpoints`, async (c) => c.json(await trainer().checkpoints(c.req.param("tenant"), c.req.param("id"), pageOf(c))));
  app.get(`${jobs}/:id/metrics`, async (c) => c.json(await trainer().metrics(c.req.param("tenant"), c.req.param("id"))));
}
