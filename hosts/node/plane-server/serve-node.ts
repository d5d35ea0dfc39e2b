/**
 * One plane alone in this process, over HTTP (`switchyard serve inference|retrieval|trainer`). The node listens
 * first (healthz answers, readyz says loading) and loads its plane after, so an orchestrator sees
 * "alive, not ready" while a model compiles. Every /v1 call must be signed with the node secret (node-auth.ts).
 *
 * - inference: the engine on the resolved model, adapters leased from the data dir's adapter store (shared
 *   with the edge that catalogs them; no data-dir lock, like the trainer);
 * - retrieval: the knowledge base, holding its data dir's lock (its indexes have one writer): give it a
 *   data dir of its own;
 * - trainer (the control node): the adapter catalog, files and fine-tuning jobs of its data dir, and the
 *   trainer's worker loop over them (control-planes.ts); no data-dir lock (it writes no index), so it
 *   shares its data dir with the inference nodes that serve its adapters.
 */
import { join, resolve } from "node:path";
import type { Server } from "node:http";
import { pino, type Logger } from "pino";
import type { Inference } from "../../../ports/inference.ts";
import type { Knowledge } from "../../../ports/knowledge.ts";
import { parseSecrets } from "../../../clients/wire/auth.ts";
import { createAdapterService } from "../../../services/adapters/index.ts";
import { createEngine, type Engine } from "../../../services/inference/engine.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { openKnowledgeBase, type KnowledgeBase } from "../../../services/retrieval/index.ts";
import { lockDataDir } from "../../../services/store/data-dir-lock.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";
import type { Config } from "../config.ts";
import { baseModelId, resolveNodeModel } from "../model.ts";
import { createPrometheus, registerEngineGauges } from "../prometheus.ts";
import { closeServer, listen } from "../server.ts";
import { mountInference } from "./inference-routes.ts";
import { mountAdapters } from "./adapter-routes.ts";
import { loadControlPlanes, type ControlPlanes } from "./control-planes.ts";
import { mountFiles } from "./file-routes.ts";
import { mountKnowledge } from "./knowledge-routes.ts";
import { mountTrainer } from "./trainer-routes.ts";
import { createNodeApp } from "./node-app.ts";
import { readNodeLoad, registerNodeLoadGauges } from "./node-load.ts";
import type { NodeLoad } from "../../../clients/wire/load.ts";

export type NodePlane = "inference" | "retrieval" | "trainer";

export interface PlaneNode {
  url: string;
  logger: Logger;
  /** Resolves once the plane is loaded (readyz answers 200); rejects when loading failed. */
  ready: Promise<void>;
  close(): Promise<void>;
}

export class NodeSecretMissingError extends Error {}

interface Loaded<P> {
  plane: P;
  /** An inference node's load (wire/load.ts). */
  load?: () => NodeLoad;
  close(): Promise<void>;
}

export async function startPlaneNode(plane: NodePlane, config: Config): Promise<PlaneNode> {
  const secrets = parseSecrets(config.nodeSecret);
  if (secrets.length === 0) throw new NodeSecretMissingError("a plane node needs SWITCHYARD_NODE_SECRET (or --node-secret): it refuses every unauthenticated call");
  const logger = pino({ level: config.logLevel, base: { service: `switchyard-${plane}` } });
  const dataDir = resolve(config.dataDir);
  const lock = plane === "retrieval" ? lockDataDir(dataDir, "server") : undefined;
  const database = openDatabase(join(dataDir, "switchyard.db"));
  const prometheus = createPrometheus();
  let loaded: Loaded<Inference | Knowledge | ControlPlanes> | undefined;
  const app = createNodeApp({ secrets, acceptBearer: config.nodeAcceptBearer, ready: () => loaded !== undefined, metrics: prometheus.http, metricsText: prometheus.text });
  const current = <P>() => loaded!.plane as P;
  const known = (id: string) => ensureTenant(database, id);
  if (plane === "inference") {
    mountInference(app, () => current<Inference>(), () => loaded!.load!());
    registerNodeLoadGauges(prometheus.registry, () => loaded?.load?.());
  } else if (plane === "retrieval") mountKnowledge(app, () => current<Knowledge>(), { maxUploadBytes: config.maxUploadBody, ensureTenant: known });
  else {
    mountTrainer(app, () => current<ControlPlanes>().trainer, known);
    mountAdapters(app, () => current<ControlPlanes>().adapters, { maxUploadBytes: config.maxUploadBody, ensureTenant: known });
    mountFiles(app, () => current<ControlPlanes>().files, { maxBytes: config.maxUploadBody, ensureTenant: known });
  }

  const server: Server = await listen(app.fetch, config.host, config.port);
  const address = server.address();
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${typeof address === "object" && address ? address.port : config.port}`;
  lock?.setUrl(url);
  logger.info({ url, plane, dataDir }, "switchyard node listening");

  const load = { inference: () => loadInference(config, dataDir, database, prometheus.registry, logger), retrieval: () => loadRetrieval(config, dataDir, database), trainer: () => loadControl(config, dataDir, database, logger) }[plane];
  const loading = load().then((l: Loaded<Inference | Knowledge | ControlPlanes>) => {
    loaded = l;
    logger.info({ plane }, "plane ready");
  });
  loading.catch((err: unknown) => logger.error({ err }, "plane failed to load"));

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await closeServer(server, config.shutdownTimeoutMs);
      await loading.catch(() => undefined);
      await loaded?.close();
      database.close();
      lock?.release();
    })());
  return { url, logger, ready: loading, close };
}

async function loadInference(config: Config, dataDir: string, database: OpenDatabase, registry: Parameters<typeof registerEngineGauges>[0], logger: Logger): Promise<Loaded<Engine>> {
  const modelDir = await resolveNodeModel(config, dataDir, (p) => logger.debug({ file: p.file, received: p.received, total: p.total }, "downloading model"));
  const shape = await loadDecoderConfig(modelDir);
  const adapters = await createAdapterService({
    db: database.db,
    dataDir,
    base: { id: baseModelId(modelDir), shape },
    limits: { maxRank: config.maxLoraRank },
    cacheBudgetBytes: config.adapterCacheBytes,
    maxUploadBytes: config.maxUploadBody,
    maxAdaptersPerBatch: config.maxAdaptersPerBatch,
    metrics: registry,
  });
  const engine = await createEngine({
    modelDir,
    modelId: baseModelId(modelDir),
    cacheDir: join(dataDir, "compiled"),
    maxQueue: config.maxQueue,
    adapters: adapters.leases,
    maxAdaptersPerBatch: adapters.cache.maxAdaptersPerBatch,
    maxLoraRank: config.maxLoraRank,
    executionProvider: config.executionProvider,
    weights: config.weights,
  });
  registerEngineGauges(registry, () => engine.stats());
  logger.info({ model: engine.info.id, modelDir }, "model loaded");
  return { plane: engine, load: () => readNodeLoad(engine, adapters.cache, config.maxQueue), close: () => engine.close() };
}

async function loadRetrieval(config: Config, dataDir: string, database: OpenDatabase): Promise<Loaded<KnowledgeBase>> {
  const knowledge = await openKnowledgeBase(database, dataDir, {
    embeddingModel: config.embeddingModel,
    int8: config.embeddingInt8,
    parseLimits: { maxDecodedBytes: config.maxParseBytes, timeoutMs: config.parseTimeoutMs },
  });
  return { plane: knowledge, close: () => knowledge.close() };
}

async function loadControl(config: Config, dataDir: string, database: OpenDatabase, logger: Logger): Promise<Loaded<ControlPlanes>> {
  const planes = await loadControlPlanes(config, dataDir, database, logger, process.env);
  return { plane: planes, close: async () => planes.worker?.close() };
}

/** The node's rows (documents; files, adapters, jobs) reference their tenant; the edge owns tenants, so the node keeps a bare row per tenant id it has seen. */
function ensureTenant(database: OpenDatabase, id: string): void {
  database.db.insert(tenants).values({ id, name: id, limits: {}, settings: {} }).onConflictDoNothing().run();
}
