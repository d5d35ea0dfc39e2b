import { Hono, type Context } from "hono";
import { z } from "zod";
import type { EvalDataset, EvalRun, Evals } from "../../ports/evals.ts";
import type { Inference } from "../../ports/inference.ts";
import { RetrievalOptions } from "../chat/retrieval-options.ts";
import { SamplingFields } from "../chat/schema.ts";
import { availableStrategies, type ModelResolver } from "../chat/strategy.ts";
import { parseDataset, MAX_DATASET_ITEMS } from "../evals/dataset.ts";
import { reportHtml } from "../evals/html.ts";
import { buildReport, METRICS } from "../evals/report.ts";
import type { AppEnv } from "../env.ts";
import { badRequest, notFound } from "../errors.ts";
import { readMultipart } from "../middleware/multipart.ts";
import { describe, jsonBody, queryParams, readJson, schemaError } from "../middleware/body.ts";
import { STRATEGIES } from "../tenant-settings.ts";
import { unavailableRoutes } from "./unavailable.ts";

/**
 * Evaluations, mounted at /v1/evals: test sets (`/datasets`, JSONL validated line by line), runs of
 * every item through every arm (`/runs`, a background job the host's EvalWorker executes; status,
 * progress, events, cancel) and their reports (`/runs/:id/report` as JSON, `/runs/:id/report.html`
 * as one self-contained page), monitors (`/monitors`) and input drift (`/drift`). A tenant sees only
 * its own datasets, runs and monitors: another's answer 404.
 */

export interface EvalRouteDeps {
  evals: Evals;
  resolveModel: ModelResolver;
  inference: Pick<Inference, "model">;
  /** Switchyard's version, for the reproducibility block. */
  version: string;
  /** Called after a run is created (the host's worker looks for work at once). */
  onRunCreated?: () => void;
  /** /monitors (routes/monitors.ts) and /drift (routes/drift.ts), when the host runs what they need; else 503. */
  monitors?: Hono<AppEnv>;
  drift?: Hono<AppEnv>;
}

const DatasetJson = z.object({ name: z.string().min(1).max(256).optional(), content: z.string() });

export const Arm = z
  .object({
    strategy: z.enum(STRATEGIES),
    adapter: z.string().min(1).max(256).optional(),
    retrieval: RetrievalOptions.optional(),
    sampling: SamplingFields.omit({ model: true, retrieval: true, user: true }).strict().optional(),
  })
  .strict();

export const RunRequest = z.object({
  dataset: z.string().min(1),
  arms: z.array(Arm).min(1).max(8).optional(),
  metrics: z.array(z.enum(METRICS)).min(1).optional(),
  thresholds: z.partialRecord(z.enum(METRICS), z.number().min(0).max(1)).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
});

const EventsQuery = z.object({ after: z.coerce.number().int().min(0).optional() });

export function datasetJson(d: Omit<EvalDataset, "items"> & { items?: EvalDataset["items"] }) {
  return {
    id: d.id,
    object: "eval.dataset",
    name: d.name,
    created_at: Math.floor(d.createdAt / 1000),
    ...(d.items ? { item_count: d.items.length, items: d.items.map((i) => ({ line: i.line, messages: i.messages, reference: i.reference, relevant_documents: i.relevantDocuments ?? null })) } : {}),
  };
}

export function runJson(r: EvalRun) {
  return {
    id: r.id,
    object: "eval.run",
    status: r.status,
    dataset: r.spec.datasetId,
    arms: r.spec.arms,
    metrics: r.spec.metrics ?? null,
    thresholds: r.spec.thresholds ?? null,
    seed: r.spec.seed,
    progress: { done: r.done, total: r.total, percent: r.total === 0 ? 100 : Math.round((1000 * r.done) / r.total) / 10 },
    error: r.error ?? null,
    created_at: Math.floor(r.createdAt / 1000),
    started_at: r.startedAt ? Math.floor(r.startedAt / 1000) : null,
    finished_at: r.finishedAt ? Math.floor(r.finishedAt / 1000) : null,
  };
}

export function evalRoutes(deps: EvalRouteDeps): Hono<AppEnv> {
  const { evals } = deps;
  const app = new Hono<AppEnv>();
  const tags = ["evals"];
  const noDataset = (id: string) => notFound(`No evaluation dataset with id '${id}'.`, "dataset");
  const ownRun = async (c: Context<AppEnv>) => {
    const id = c.req.param("id")!;
    const run = await evals.getRun(c.get("tenant").id, id);
    if (!run) throw notFound(`No evaluation run with id '${id}'.`, "id");
    return run;
  };

  app.post("/datasets", describe({ summary: "Upload a test set: JSONL of {messages, reference, relevant_documents?}, as multipart `file` (and `name`) or JSON {name, content}.", tags }), async (c) => {
    const { name, content } = await datasetUpload(c);
    const { items, errors } = parseDataset(content);
    if (errors.length > 0) {
      const shown = errors.slice(0, 5).map((e) => `line ${e.line}: ${e.reason}`).join("; ");
      throw badRequest(`The test set has ${errors.length} invalid line${errors.length === 1 ? "" : "s"}: ${shown}${errors.length > 5 ? "; ..." : ""}.`, "file", "invalid_eval_file");
    }
    if (items.length === 0) throw badRequest("The test set has no items.", "file", "invalid_eval_file");
    if (items.length > MAX_DATASET_ITEMS) throw badRequest(`The test set has ${items.length} items; the limit is ${MAX_DATASET_ITEMS}.`, "file", "invalid_eval_file");
    const dataset = await evals.createDataset(c.get("tenant").id, name, items);
    return c.json(datasetJson(dataset), 201);
  });

  app.get("/datasets", describe({ summary: "The caller's test sets, newest first.", tags }), async (c) => {
    const list = await evals.listDatasets(c.get("tenant").id);
    return c.json({ object: "list", data: list.map((d) => datasetJson(d)) });
  });

  app.get("/datasets/:id", describe({ summary: "A test set with its items.", tags }), async (c) => {
    const dataset = await evals.getDataset(c.get("tenant").id, c.req.param("id"));
    if (!dataset) throw noDataset(c.req.param("id"));
    return c.json(datasetJson(dataset));
  });

  app.delete("/datasets/:id", describe({ summary: "Delete a test set.", tags }), async (c) => {
    if (!(await evals.deleteDataset(c.get("tenant").id, c.req.param("id")))) throw noDataset(c.req.param("id"));
    return c.json({ id: c.req.param("id"), object: "eval.dataset.deleted", deleted: true });
  });

  app.post("/runs", describe({ summary: "Run every item of a test set through every arm (default: the strategies the tenant can use), in the background.", tags }), jsonBody(RunRequest), async (c) => {
    const body = c.req.valid("json");
    const tenant = c.get("tenant");
    const dataset = await evals.getDataset(tenant.id, body.dataset);
    if (!dataset) throw noDataset(body.dataset);
    const arms = body.arms ?? (await availableStrategies(deps.resolveModel, tenant, undefined)).map((strategy) => ({ strategy }));
    const model = await deps.inference.model();
    const seed = body.seed ?? 20_240_601;
    const spec = { datasetId: dataset.id, arms, metrics: body.metrics, thresholds: body.thresholds, seed, environment: { model: model.id, context_length: model.contextLength, switchyard_version: deps.version, dataset: { id: dataset.id, name: dataset.name, items: dataset.items.length } } };
    const run = await evals.createRun(tenant.id, spec, dataset.items.length * arms.length);
    await evals.addEvent(run.id, "info", `Queued: ${dataset.items.length} items × ${arms.length} arms.`);
    deps.onRunCreated?.();
    return c.json(runJson(run), 201);
  });

  app.get("/runs", describe({ summary: "The caller's evaluation runs, newest first.", tags }), async (c) => {
    const runs = await evals.listRuns(c.get("tenant").id);
    return c.json({ object: "list", data: runs.map(runJson) });
  });

  app.get("/runs/:id", describe({ summary: "A run: status and progress.", tags }), async (c) => c.json(runJson(await ownRun(c))));

  app.post("/runs/:id/cancel", describe({ summary: "Cancel a queued or running run (its stored results stay).", tags }), async (c) => {
    const run = await ownRun(c);
    const cancelled = await evals.cancelRun(run.tenantId, run.id);
    return c.json(runJson(cancelled ?? run));
  });

  app.get("/runs/:id/events", describe({ summary: "A run's events, oldest first (`after`: an event id).", tags }), queryParams(EventsQuery), async (c) => {
    const run = await ownRun(c);
    const events = await evals.events(run.id, c.req.valid("query").after);
    return c.json({ object: "list", data: events.map((e) => ({ id: e.id, object: "eval.event", created_at: Math.floor(e.createdAt / 1000), level: e.level, message: e.message })) });
  });

  const report = async (c: Context<AppEnv>) => {
    const run = await ownRun(c);
    const dataset = await evals.getDataset(run.tenantId, run.spec.datasetId);
    if (!dataset) throw noDataset(run.spec.datasetId);
    return buildReport(run, dataset, await evals.results(run.id));
  };
  app.get("/runs/:id/report", describe({ summary: "The run's report: per-arm means with 95% bootstrap intervals, pairwise tests, per-item results.", tags }), async (c) => c.json(await report(c)));
  app.get("/runs/:id/report.html", describe({ summary: "The run's report as one self-contained HTML page.", tags }), async (c) => c.html(reportHtml(await report(c))));

  app.route("/monitors", deps.monitors ?? unavailableRoutes("monitors"));
  app.route("/drift", deps.drift ?? unavailableRoutes("embeddings"));
  return app;
}

async function datasetUpload(c: Context<AppEnv>): Promise<{ name: string; content: string }> {
  const type = c.req.header("content-type") ?? "";
  if (/^multipart\/form-data/i.test(type)) {
    const form = await readMultipart(c);
    const file = form.file;
    if (!(file instanceof File)) throw badRequest("Missing the multipart field 'file' (the JSONL test set).", "file", "missing_field");
    const name = form.name;
    return { name: typeof name === "string" && name !== "" ? name.slice(0, 256) : file.name || "dataset.jsonl", content: await file.text() };
  }
  const parsed = DatasetJson.safeParse(await readJson(c));
  if (!parsed.success) throw schemaError(parsed.error);
  return { name: parsed.data.name ?? "dataset.jsonl", content: parsed.data.content };
}
