import { join } from "node:path";
import type { Registry } from "prom-client";
import type { EdgeOptions } from "../../edge/edge.ts";
import type { Log } from "../../edge/env.ts";
import type { Planes } from "../../ports/index.ts";
import { createAdapterService } from "../../services/adapters/index.ts";
import { createEngine, type Engine } from "../../services/inference/engine.ts";
import { createFileService } from "../../services/files/index.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { openKnowledgeBase, type KnowledgeBase } from "../../services/retrieval/index.ts";
import type { OpenDatabase } from "../../services/store/db.ts";
import { inProcessEvaluation } from "../../services/evaluation/index.ts";
import { PreferenceStore } from "../../services/store/preferences.ts";
import { UsageStore } from "../../services/store/usage.ts";
import { StoreTrainer } from "../../trainer/jobs/store.ts";
import type { Config } from "./config.ts";
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
  engine: Engine;
  knowledge: KnowledgeBase;
  close(): Promise<void>;
}

/**
 * The planes behind the edge, in this process: the inference engine on the resolved model, the adapter
 * catalog, cache and leases, the knowledge base, uploaded files, fine-tuning jobs (rows; the trainer process runs them)
 * and usage accounting, over the node's SQLite database.
 */
export async function startEmbeddedPlanes(config: Config, dataDir: string, database: OpenDatabase, metrics: Registry, logger: Log): Promise<EmbeddedPlanes> {
  const modelDir = await resolveNodeModel(config, dataDir, (p) => logger.debug({ file: p.file, received: p.received, total: p.total }, "downloading model"));
  const modelConfig = await loadDecoderConfig(modelDir);
  const adapters = await createAdapterService({
    db: database.db,
    dataDir,
    base: { id: baseModelId(modelDir), shape: modelConfig },
    limits: { maxRank: config.maxLoraRank },
    cacheBudgetBytes: config.adapterCacheBytes,
    maxUploadBytes: config.maxUploadBody,
    loraDir: config.loraDir,
    maxAdaptersPerBatch: config.maxAdaptersPerBatch,
    metrics,
  });
  const engine = await createEngine({
    modelDir,
    modelId: baseModelId(modelDir),
    cacheDir: join(dataDir, "compiled"),
    maxQueue: config.maxQueue,
    adapters: adapters.leases,
    maxAdaptersPerBatch: adapters.cache.maxAdaptersPerBatch,
    maxLoraRank: config.maxLoraRank,
  });
  const knowledge = await openKnowledgeBase(database, dataDir, {
    embeddingModel: config.embeddingModel,
    int8: config.embeddingInt8,
    embedThreads: config.embedThreads,
    parseLimits: { maxDecodedBytes: config.maxParseBytes, timeoutMs: config.parseTimeoutMs },
  });
  const files = await createFileService({
    db: database.db,
    dataDir,
    tokenizer: engine,
    limits: { maxBytes: config.maxUploadBody, maxLines: config.maxTrainingFileLines },
  });
  logger.info({ model: engine.info.id, modelDir }, "model loaded");

  return {
    planes: {
      inference: engine,
      adapters: adapters.catalog,
      knowledge,
      usage: new UsageStore(database.db),
      files,
      // Job rows only: the trainer process (`switchyard serve trainer`) runs them.
      trainer: new StoreTrainer({ db: database.db, files, baseModel: () => adapters.catalog.baseModel(), adapters: adapters.catalog }),
      evaluation: inProcessEvaluation,
      preferences: new PreferenceStore(database.db),
    },
    modelDir,
    loraLoadingByPath: config.loraDir !== undefined,
    baseRoot: config.model || baseModelId(modelDir),
    engine,
    knowledge,
    async close() {
      await engine.close();
      await knowledge.close();
    },
  };
}
