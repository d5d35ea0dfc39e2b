import { join } from "node:path";
import type { Registry } from "prom-client";
import type { EdgeOptions } from "../../edge/edge.ts";
import type { Log } from "../../edge/env.ts";
import type { Inference, Knowledge, ModelInfo, Planes } from "../../ports/index.ts";
import { FleetInference } from "../../clients/fleet.ts";
import { HttpInference } from "../../clients/inference.ts";
import { HttpAdapterCatalog } from "../../clients/adapters.ts";
import { HttpFiles } from "../../clients/files.ts";
import { HttpKnowledge } from "../../clients/knowledge.ts";
import { KnowledgePartitions } from "../../clients/knowledge-partitions.ts";
import { HttpTrainer } from "../../clients/trainer.ts";
import { parseSecrets } from "../../clients/wire/auth.ts";
import { createAdapterService } from "../../services/adapters/index.ts";
import { createEngine, type Engine } from "../../services/inference/engine.ts";
import { createFileService } from "../../services/files/index.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { openKnowledgeBase, type KnowledgeBase } from "../../services/retrieval/index.ts";
import type { OpenDatabase } from "../../services/store/db.ts";
import { inProcessEvaluation } from "../../services/evaluation/index.ts";
import { EvalStore } from "../../services/store/evals.ts";
import { FeedbackStore } from "../../services/store/feedback.ts";
import { MonitorStore } from "../../services/store/monitors.ts";
import { PreferenceStore } from "../../services/store/preferences.ts";
import { UsageStore } from "../../services/store/usage.ts";
import { StoreTrainer } from "../../trainer/jobs/store.ts";
import { ConfigError, type Config } from "./config.ts";
import { startEngineThread, type EngineThread } from "./engine-thread.ts";
import { registerEngineGauges, registerFleetGauges } from "./prometheus.ts";
import { baseModelId, resolveNodeModel } from "./model.ts";

export interface EmbeddedPlanes {
  /** The planes' ports (the edge's own tenants and keys are the host's). */
  planes: Omit<Planes, "tenants" | "keys">;
  /** The resolved model folder (the trainer process is given it). */
  modelDir: string;
  /** Whether vLLM's /v1/load_lora_adapter may read adapters by path (SWITCHYARD_LORA_DIR is set). */
  loraLoadingByPath: boolean;
  /** The base model's `root` in /v1/models: the model as configured, else its id. */
  baseRoot: EdgeOptions["baseRoot"];
  /** The engine, in process or in a worker thread; absent when the edge uses an inference node (config.inferenceUrl). */
  engine?: Inference & { readonly info: ModelInfo };
  /** The engine's Prometheus text when it runs in a worker thread (its gauges and adapter cache); "" in process, where they are in `metrics`. */
  engineMetricsText(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The planes behind the edge, in this process: the inference engine on the resolved model, the adapter
 * catalog, cache and leases, the knowledge base, uploaded files, fine-tuning jobs (rows; the trainer process runs them)
 * and usage accounting, over the node's SQLite database. With `inferenceUrl` / `retrievalUrl` the
 * inference and knowledge ports are HTTP clients of plane nodes instead (clients/): a fleet for several inference
 * nodes, tenant partitions for several retrieval nodes; with `trainerUrl` the trainer, adapter catalog and files
 * ports are clients of the control node. An in-process engine still reads adapter weights from this data dir's
 * adapters/ folder, so with a control node it must be the control node's data dir (as inference nodes' is).
 */
export async function startEmbeddedPlanes(config: Config, dataDir: string, database: OpenDatabase, metrics: Registry, logger: Log): Promise<EmbeddedPlanes> {
  const modelDir = await resolveNodeModel(config, dataDir, (p) => logger.debug({ file: p.file, received: p.received, total: p.total }, "downloading model"));
  const modelConfig = await loadDecoderConfig(modelDir);
  const remote = remotePlanes(config);
  if (remote.inference instanceof FleetInference) {
    const fleet = remote.inference;
    registerFleetGauges(metrics, () => fleet.stats());
  }
  const inWorker = config.engineThread === "worker" && !remote.inference;
  let thread: EngineThread | undefined;
  const adapters = await createAdapterService({
    db: database.db,
    dataDir,
    base: { id: baseModelId(modelDir), shape: modelConfig },
    limits: { maxRank: config.maxLoraRank },
    cacheBudgetBytes: config.adapterCacheBytes,
    maxUploadBytes: config.maxUploadBody,
    loraDir: config.loraDir,
    maxAdaptersPerBatch: config.maxAdaptersPerBatch,
    // In a worker, the cache and leases the engine uses (and their metrics) live there.
    metrics: inWorker ? undefined : metrics,
    retire: inWorker ? (id) => thread!.retire(id) : undefined,
  });
  const engineOptions = {
    modelDir,
    modelId: baseModelId(modelDir),
    cacheDir: join(dataDir, "compiled"),
    maxQueue: config.maxQueue,
    maxLoraRank: config.maxLoraRank,
    executionProvider: config.executionProvider,
    weights: config.weights,
  };
  let engine: Engine | EngineThread | undefined;
  if (remote.inference) engine = undefined;
  else if (inWorker) {
    const limits = { maxRank: config.maxLoraRank };
    const adapterSource = { dir: join(dataDir, "adapters"), base: modelConfig, limits, cacheBudgetBytes: config.adapterCacheBytes, maxAdaptersPerBatch: adapters.cache.maxAdaptersPerBatch };
    engine = thread = await startEngineThread({ ...engineOptions, adapters: adapterSource });
  } else {
    const inProcess = await createEngine({ ...engineOptions, adapters: adapters.leases, maxAdaptersPerBatch: adapters.cache.maxAdaptersPerBatch });
    registerEngineGauges(metrics, () => inProcess.stats());
    engine = inProcess;
  }
  const localKnowledge: KnowledgeBase | undefined = remote.knowledge ? undefined : await openKnowledgeBase(database, dataDir, {
    embeddingModel: config.embeddingModel,
    int8: config.embeddingInt8,
    embedThreads: config.embedThreads,
    parseLimits: { maxDecodedBytes: config.maxParseBytes, timeoutMs: config.parseTimeoutMs },
  });
  const inference: Inference = engine ?? remote.inference!;
  const knowledge: Knowledge = localKnowledge ?? remote.knowledge!;
  const files = remote.control?.files ?? (await createFileService({
    db: database.db,
    dataDir,
    tokenizer: inference,
    limits: { maxBytes: config.maxUploadBody, maxLines: config.maxTrainingFileLines },
  }));
  if (engine) logger.info({ model: engine.info.id, modelDir }, "model loaded");
  else logger.info({ inferenceUrl: config.inferenceUrl }, "using the inference node");
  if (remote.knowledge) logger.info({ retrievalUrl: config.retrievalUrl }, config.retrievalUrl!.length > 1 ? "using the retrieval nodes, partitioned by tenant" : "using the retrieval node");
  if (remote.control) logger.info({ trainerUrl: config.trainerUrl }, "using the control node");

  return {
    planes: {
      inference,
      adapters: remote.control?.adapters ?? adapters.catalog,
      knowledge,
      usage: new UsageStore(database.db),
      files,
      // Job rows only: the trainer process (`switchyard serve trainer`) runs them.
      trainer: remote.control?.trainer ?? new StoreTrainer({ db: database.db, files, baseModel: () => adapters.catalog.baseModel(), adapters: adapters.catalog }),
      evaluation: inProcessEvaluation,
      preferences: new PreferenceStore(database.db),
      evals: new EvalStore(database.db),
      feedback: new FeedbackStore(database.db),
      monitors: new MonitorStore(database.db),
      // Input drift embeds with the knowledge base's embedder (absent with a retrieval node).
      embeddings: localKnowledge?.embedder,
    },
    modelDir,
    loraLoadingByPath: config.loraDir !== undefined,
    baseRoot: config.model || baseModelId(modelDir),
    engine,
    engineMetricsText: async () => (thread ? thread.metricsText() : ""),
    async close() {
      await engine?.close();
      await remote.inference?.close();
      await localKnowledge?.close();
    },
  };
}

/** One node: its client; two or more: a fleet, its checks started. */
function inferenceNodes(config: Config, urls: string[], secret: string): HttpInference | FleetInference {
  if (urls.length === 1) return new HttpInference({ url: urls[0]!, secret, timeoutMs: config.nodeTimeoutMs });
  const fleet = new FleetInference({
    nodes: urls, secret, timeoutMs: config.nodeTimeoutMs,
    placement: config.fleetRouting, checkIntervalMs: config.fleetCheckIntervalMs, spillQueueDepth: config.fleetSpillQueue,
  });
  fleet.start();
  return fleet;
}

interface RemotePlanes {
  inference?: HttpInference | FleetInference;
  knowledge?: Knowledge;
  /** The control node's ports (--trainer-url). */
  control?: { trainer: HttpTrainer; adapters: HttpAdapterCatalog; files: HttpFiles };
}

/** One node: its client; two or more: each tenant on its rendezvous node (no spill: its documents live there). */
function retrievalNodes(config: Config, urls: string[], secret: string): Knowledge {
  if (urls.length === 1) return new HttpKnowledge({ url: urls[0]!, secret, timeoutMs: config.nodeTimeoutMs });
  return new KnowledgePartitions({ nodes: urls, secret, timeoutMs: config.nodeTimeoutMs });
}

/** HTTP clients of the plane nodes the config names (none by default: everything in process). */
function remotePlanes(config: Config): RemotePlanes {
  if (!config.inferenceUrl && !config.retrievalUrl && !config.trainerUrl) return {};
  const secret = parseSecrets(config.nodeSecret)[0];
  if (secret === undefined) throw new ConfigError("--inference-url / --retrieval-url / --trainer-url need SWITCHYARD_NODE_SECRET (the nodes refuse unauthenticated calls)");
  const client = (url: string) => ({ url, secret, timeoutMs: config.nodeTimeoutMs });
  const control = config.trainerUrl ? client(config.trainerUrl) : undefined;
  return {
    inference: config.inferenceUrl ? inferenceNodes(config, config.inferenceUrl, secret) : undefined,
    knowledge: config.retrievalUrl ? retrievalNodes(config, config.retrievalUrl, secret) : undefined,
    control: control && { trainer: new HttpTrainer(control), adapters: new HttpAdapterCatalog({ ...control, maxDownloadBytes: 2 * config.maxUploadBody }), files: new HttpFiles({ ...control, maxDownloadBytes: config.maxUploadBody }) },
  };
}
