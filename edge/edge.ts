/**
 * The edge: one function that builds the whole public HTTP API from the ports a host gives it
 * (hosts/node/server.ts in one process, hosts/workers/worker.ts on Cloudflare). Every plane's routes
 * are mounted here and nowhere else; a plane missing from `planes` keeps its routes, behind the same
 * auth, and they answer 503 `plane_unavailable`.
 *
 * Under /v1, tenant key unless noted:
 * - inference (with adapters, knowledge and usage behind it): /chat/completions, /completions, /compare
 * - usage: /usage
 * - adapters: /models, /adapters, /admin/adapters (admin), /load_lora_adapter and /unload_lora_adapter (admin, vLLM's)
 * - knowledge: /knowledge
 * - files: /files (OpenAI's Files API; training data for fine-tuning)
 * - trainer: /fine_tuning (OpenAI's fine-tuning API over the `Trainer` port: /fine_tuning/jobs, events, checkpoints)
 * - preferences: /preferences (the playground's blind-compare choices; DPO download, win rates per arm)
 * - evals (with inference behind it): /evals (test sets, runs the host's EvalWorker executes, reports;
 *   /evals/monitors with the monitors plane, /evals/drift with feedback, embeddings and files)
 * - feedback: /chat/completions/:id/feedback (in the chat routes), /feedback/summary
 * - the playground: GET / and /ui/* (static assets from `options.assets`, when the host has them)
 */
import type { Hono } from "hono";
import type { StaticAssets } from "../ports/assets.ts";
import { modelNotFound, type Planes } from "../ports/index.ts";
import type { RateWindow } from "../ports/rate-limits.ts";
import { createApp, type AppDeps } from "./app.ts";
import type { ChatDeps } from "./chat/deps.ts";
import type { ModelResolver } from "./chat/strategy.ts";
import type { AppEnv } from "./env.ts";
import { SlidingWindow, TokenBudget } from "./middleware/rate-limit.ts";
import { adapterRoutes } from "./routes/adapters.ts";
import { chatRoutes } from "./routes/chat.ts";
import { compareRoutes } from "./routes/compare.ts";
import { completionRoutes } from "./routes/completions.ts";
import { driftRoutes } from "./routes/drift.ts";
import { evalRoutes } from "./routes/evals.ts";
import { feedbackRoutes } from "./routes/feedback.ts";
import { monitorRoutes } from "./routes/monitors.ts";
import { noMonitoringMetrics, type MonitoringMetrics } from "./monitoring/metrics.ts";
import { fileRoutes } from "./routes/files.ts";
import { fineTuningRoutes } from "./routes/fine-tuning.ts";
import { knowledgeRoutes } from "./routes/knowledge.ts";
import { loraLoadingRoutes } from "./routes/lora-loading.ts";
import { modelResolver, modelRoutes } from "./routes/models.ts";
import { playgroundRoutes } from "./routes/playground.ts";
import { preferenceRoutes } from "./routes/preferences.ts";
import { unavailableRoutes } from "./routes/unavailable.ts";
import { usageRoutes } from "./routes/usage.ts";
import { defaultAdapterCheck } from "./settings-check.ts";

export interface EdgeOptions extends Pick<AppDeps, "logger" | "metrics" | "health" | "limits"> {
  /** Cancels a stream whose client has not read for this long (0 or absent: never). */
  streamStallTimeoutMs?: number;
  /** The base model's `root` in /v1/models, as vLLM shows it: the model as configured (folder, name or Hub id); default its id. */
  baseRoot?: string;
  /** Whether the adapter plane may load adapters by path (vLLM's /v1/load_lora_adapter); checked first, so "off" answers before "already loaded". */
  loraLoadingByPath?: boolean;
  /** The clock of the requests- and tokens-per-minute windows, unix ms (default Date.now); tests move it. */
  now?: () => number;
  /** Where requests and tokens per minute are counted: default this process's memory (on `now`); a host with
   * several isolates or processes gives one shared counter (Workers: a Durable Object). */
  rateWindow?: RateWindow;
  /** The playground's files, served at / and /ui/* (absent: no page). */
  assets?: StaticAssets;
  /** Switchyard's version (package.json), for evaluation reports. */
  version?: string;
  /** Called when an evaluation run is queued (the host's EvalWorker looks for work at once). */
  onEvalRunCreated?: () => void;
  /** Called when a monitor is created (the host's scheduler looks at once). */
  onMonitorCreated?: () => void;
  /** Where monitoring's gauges and counters go (Prometheus on Node); default nowhere. */
  monitoringMetrics?: MonitoringMetrics;
}

type Routes = Array<[path: string, routes: Hono<AppEnv>]>;

/** The public HTTP API over the planes. Web Request/Response only: the same on Node and Workers. */
export function createEdge(planes: Planes, options: EdgeOptions): Hono<AppEnv> {
  const { adapters: catalog, tenants } = planes;
  const resolveModel = catalog && modelResolver(catalog);
  const rateWindow = options.rateWindow ?? new SlidingWindow(options.now);
  const chat = chatDeps(planes, { ...options, rateWindow }, resolveModel);
  const adapterAdmin = mount("adapters", catalog, (c) => adapterRoutes({ catalog: c, tenants, maxUploadBytes: options.limits.maxUploadBody }));
  const loraLoading = catalog ? loraLoadingRoutes({ catalog, tenants, loadingByPath: options.loraLoadingByPath ?? false }) : unavailableEach("adapters", ["/load_lora_adapter", "/unload_lora_adapter"]);

  return createApp({
    logger: options.logger,
    metrics: options.metrics,
    health: options.health,
    limits: options.limits,
    now: options.now,
    rateWindow,
    pages: options.assets && playgroundRoutes(options.assets),
    tenants,
    keys: planes.keys,
    planes: [
      ["/chat", mount(chat.plane, chat.deps, chatRoutes)],
      ["/completions", mount(chat.plane, chat.deps, completionRoutes)],
      ["/compare", mount(chat.plane, chat.deps, compareRoutes)],
      ["/usage", mount("usage", planes.usage, usageRoutes)],
      ["/models", mount("adapters", catalog, (c) => modelRoutes({ catalog: c, baseRoot: options.baseRoot }))],
      ["/adapters", adapterAdmin],
      ["/knowledge", mount("knowledge", planes.knowledge, knowledgeRoutes)],
      ["/files", mount("files", planes.files, fileRoutes)],
      ["/fine_tuning", mount("trainer", planes.trainer, fineTuningRoutes)],
      ["/preferences", mount("preferences", planes.preferences, preferenceRoutes)],
      ["/feedback", mount("feedback", planes.feedback, feedbackRoutes)],
      ["/evals", evals(planes, chat.deps, options)],
    ],
    adminPlanes: [["/adapters", adapterAdmin]],
    adminEndpoints: loraLoading,
    checkSettings: resolveModel && defaultAdapterCheck(resolveModel),
  });
}

/** A plane's routes when the host runs it, else routes answering 503 plane_unavailable. */
function mount<T>(plane: string, dep: T | undefined, routes: (dep: T) => Hono<AppEnv>): Hono<AppEnv> {
  return dep ? routes(dep) : unavailableRoutes(plane);
}

function unavailableEach(plane: string, paths: string[]): Routes {
  return paths.map((path) => [path, unavailableRoutes(plane)]);
}

/** The evaluation routes: they need the evals plane and the chat pipeline (its runs go through it). */
function evals(planes: Planes, chat: ChatDeps | undefined, options: EdgeOptions): Hono<AppEnv> {
  if (!planes.evals) return unavailableRoutes("evals");
  if (!chat) return unavailableRoutes("inference");
  const { resolveModel } = chat;
  const metrics = options.monitoringMetrics ?? noMonitoringMetrics;
  const now = options.now ?? Date.now;
  const monitors = planes.monitors && monitorRoutes({ monitors: planes.monitors, evals: planes.evals, resolveModel, now, onMonitorCreated: options.onMonitorCreated });
  const { feedback, embeddings, files, trainer } = planes;
  const drift = feedback && embeddings && files ? driftRoutes({ feedback, embeddings, files, trainer, resolveModel, metrics }) : undefined;
  return evalRoutes({ evals: planes.evals, resolveModel, inference: chat.inference, version: options.version ?? "unknown", onRunCreated: options.onEvalRunCreated, monitors, drift });
}

/** The chat pipeline's dependencies over `planes` (undefined without inference or usage): what the host's EvalWorker runs items through. */
export function chatPipeline(planes: Planes, options: Pick<EdgeOptions, "now" | "rateWindow"> = {}): ChatDeps | undefined {
  const { adapters: catalog } = planes;
  return chatDeps(planes, options, catalog && modelResolver(catalog)).deps;
}

/** What chat, completions and compare need: inference and usage, with adapters, knowledge and evaluation when present. `plane` names the first one missing. */
function chatDeps(planes: Planes, options: Pick<EdgeOptions, "now" | "rateWindow" | "streamStallTimeoutMs" | "monitoringMetrics">, resolveModel: ModelResolver | undefined) {
  const { inference, usage } = planes;
  if (!inference) return { plane: "inference" };
  if (!usage) return { plane: "usage" };
  const deps: ChatDeps = {
    inference,
    retrieval: planes.knowledge,
    resolveModel: resolveModel ?? baseOnly(inference),
    usage,
    evaluation: planes.evaluation,
    tokenBudget: new TokenBudget(options.rateWindow ?? new SlidingWindow(options.now)),
    streamStallTimeoutMs: options.streamStallTimeoutMs,
    feedback: planes.feedback,
    monitoringMetrics: options.monitoringMetrics,
  };
  return { plane: "inference", deps };
}

/** Without an adapter plane, `model` is the base model or nothing. */
function baseOnly(inference: NonNullable<Planes["inference"]>): ModelResolver {
  return async (model) => {
    const base = (await inference.model()).id;
    if (model === undefined || model === "" || model === base) return { base };
    throw modelNotFound(model);
  };
}
