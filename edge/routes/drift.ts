import { Hono } from "hono";
import { z } from "zod";
import type { Embeddings } from "../../ports/embeddings.ts";
import type { Feedback } from "../../ports/feedback.ts";
import type { Files } from "../../ports/files.ts";
import type { Trainer } from "../../ports/trainer.ts";
import type { ModelResolver } from "../chat/strategy.ts";
import type { AppEnv } from "../env.ts";
import { badRequest, withParam } from "../errors.ts";
import { describe, queryParams } from "../middleware/body.ts";
import { centroid, centroidDrift, DEFAULT_DRIFT_WINDOW, MAX_TRAINING_EXAMPLES, trainingPrompts } from "../monitoring/drift.ts";
import type { MonitoringMetrics } from "../monitoring/metrics.ts";

/**
 * Input drift, mounted at /v1/evals/drift: the centroid distance (edge/monitoring/drift.ts) of the last
 * `window` prompts served with an adapter against its training file's user messages. The adapter is
 * `adapter` (as chat's `model` names it), else the tenant's default; the training file is
 * `training_file`, else the one of the caller's fine-tuning job that produced the adapter. Each answer
 * also sets the host's drift gauge for the tenant and adapter.
 */

export interface DriftRouteDeps {
  feedback: Feedback;
  embeddings: Embeddings;
  files: Files;
  trainer?: Trainer;
  resolveModel: ModelResolver;
  metrics: MonitoringMetrics;
}

const DriftQuery = z.object({
  adapter: z.string().min(1).max(256).optional(),
  training_file: z.string().min(1).max(256).optional(),
  window: z.coerce.number().int().min(1).max(1000).default(DEFAULT_DRIFT_WINDOW),
});

/** Training centroids by embedder and file id (files never change). */
const CACHE_LIMIT = 64;

export function driftRoutes(deps: DriftRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const trainingCentroids = new Map<string, { centroid: Float64Array; examples: number }>();

  const trainingCentroid = async (tenantId: string, fileId: string) => {
    const key = `${deps.embeddings.id}\n${tenantId}\n${fileId}`;
    const cached = trainingCentroids.get(key);
    if (cached) return cached;
    const content = await withParam("training_file", () => deps.files.content(tenantId, fileId));
    const prompts = trainingPrompts(new TextDecoder().decode(content), MAX_TRAINING_EXAMPLES);
    const c = centroid(await deps.embeddings.embed(prompts));
    if (!c) throw badRequest(`The training file '${fileId}' has no user messages.`, "training_file");
    const entry = { centroid: c, examples: prompts.length };
    if (trainingCentroids.size >= CACHE_LIMIT) trainingCentroids.delete(trainingCentroids.keys().next().value!);
    trainingCentroids.set(key, entry);
    return entry;
  };

  const trainingFileOf = async (tenantId: string, adapter: string) => {
    for (let after: string | undefined, n = 0; n < 20; n++) {
      const page = await deps.trainer?.list(tenantId, { after, limit: 100 });
      const job = page?.data.find((j) => j.fineTunedModel === adapter);
      if (job) return job.trainingFile;
      if (!page?.hasMore) break;
      after = page.data.at(-1)?.id;
    }
    throw badRequest(`No fine-tuning job of yours produced '${adapter}': name its training data with 'training_file'.`, "training_file", "training_file_required");
  };

  app.get("/", describe({ summary: "Input drift of recent prompts against an adapter's training data: 1 − cosine of the embedding centroids.", tags: ["evals"] }), queryParams(DriftQuery), async (c) => {
    const q = c.req.valid("query");
    const tenant = c.get("tenant");
    const resolved = await withParam("adapter", () => deps.resolveModel(q.adapter, tenant));
    if (!resolved.adapterName) throw badRequest("Name an adapter with 'adapter' or set the tenant's defaultAdapter.", "adapter", "adapter_required");
    const fileId = q.training_file ?? (await trainingFileOf(tenant.id, resolved.adapterName));
    const training = await trainingCentroid(tenant.id, fileId);
    const prompts = await deps.feedback.recentPrompts(tenant.id, resolved.adapterName, q.window);
    const recent = prompts.length > 0 ? centroid(await deps.embeddings.embed(prompts)) : undefined;
    const drift = recent ? centroidDrift(recent, training.centroid) : null;
    if (drift !== null) deps.metrics.inputDrift({ tenant: tenant.id, adapter: resolved.adapterName }, drift);
    return c.json({
      object: "eval.drift",
      adapter: resolved.adapterName,
      training_file: fileId,
      window: q.window,
      prompts: prompts.length,
      training_examples: training.examples,
      drift,
      embedder: deps.embeddings.id,
      method: "1 - cosine(mean of L2-normalised embeddings of the recent prompts, same over the training file's user messages)",
    });
  });
  return app;
}
