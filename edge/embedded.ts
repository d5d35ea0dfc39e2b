import { join, resolve } from "node:path";
import type { Hono } from "hono";
import type { Registry } from "prom-client";
import { createAdapterService } from "../services/adapters/index.ts";
import { createEngine, type Engine } from "../services/inference/engine.ts";
import { loadDecoderConfig } from "../services/model/config.ts";
import { resolveModel } from "../services/model/resolve.ts";
import { openKnowledgeBase, type KnowledgeBase } from "../services/retrieval/index.ts";
import type { OpenDatabase } from "../services/store/db.ts";
import type { Tenant } from "../services/store/schema.ts";
import { TenantStore } from "../services/store/tenants.ts";
import { UsageStore } from "../services/store/usage.ts";
import type { ChatDeps } from "./chat/deps.ts";
import type { ModelResolver } from "./chat/strategy.ts";
import type { Config } from "./config.ts";
import type { AppEnv, Log } from "./env.ts";
import { badRequest } from "./errors.ts";
import { SlidingWindow, TokenBudget } from "./middleware/rate-limit.ts";
import { adapterRoutes } from "./routes/adapters.ts";
import { chatRoutes } from "./routes/chat.ts";
import { compareRoutes } from "./routes/compare.ts";
import { completionRoutes } from "./routes/completions.ts";
import { knowledgeRoutes } from "./routes/knowledge.ts";
import { loraLoadingRoutes } from "./routes/lora-loading.ts";
import { modelResolver, modelRoutes } from "./routes/models.ts";
import type { SettingsCheck } from "./routes/tenant.ts";
import { usageRoutes } from "./routes/usage.ts";

export interface EmbeddedPlanes {
  routes: Array<[string, Hono<AppEnv>]>;
  adminRoutes: Array<[string, Hono<AppEnv>]>;
  adminEndpoints: Array<[string, Hono<AppEnv>]>;
  checkSettings: SettingsCheck;
  engine: Engine;
  knowledge: KnowledgeBase;
  close(): Promise<void>;
}

/**
 * The planes behind the edge, in this process: the inference engine on the resolved model, the adapter
 * catalog, cache and leases, and the knowledge base, each mounted under /v1 through its routes. `now` is the
 * clock of the tokens-per-minute window (default Date.now).
 */
export async function startEmbeddedPlanes(config: Config, dataDir: string, database: OpenDatabase, metrics: Registry, logger: Log, now?: () => number): Promise<EmbeddedPlanes> {
  const modelDir = await resolveModel(config.model, {
    searchPath: config.modelPath.split(":").filter(Boolean).map((p) => resolve(p)),
    cacheDir: join(dataDir, "models"),
    onProgress: (p) => logger.debug({ file: p.file, received: p.received, total: p.total }, "downloading model"),
  });
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
    parseLimits: { maxDecodedBytes: config.maxParseBytes, timeoutMs: config.parseTimeoutMs },
  });
  logger.info({ model: engine.info.id, modelDir }, "model loaded");

  const { catalog } = adapters;
  const tenants = new TenantStore(database.db);
  const resolveModelField: ModelResolver = modelResolver(catalog);
  const chat: ChatDeps = {
    inference: engine,
    retrieval: knowledge,
    resolveModel: resolveModelField,
    usage: new UsageStore(database.db),
    tokenBudget: new TokenBudget(new SlidingWindow(now)),
    streamStallTimeoutMs: config.streamStallTimeoutMs,
  };
  const adapterAdmin = adapterRoutes({ catalog, tenants, maxUploadBytes: config.maxUploadBody });
  return {
    adminRoutes: [["/adapters", adapterAdmin]],
    adminEndpoints: loraLoadingRoutes({ catalog, tenants, loadingByPath: Boolean(config.loraDir) }),
    checkSettings: async (tenant, settings) => ({ ...settings, defaultAdapter: await defaultAdapterId(resolveModelField, tenant, settings.defaultAdapter) }),
    routes: [
      ["/chat", chatRoutes(chat)],
      ["/completions", completionRoutes(chat)],
      ["/compare", compareRoutes(chat)],
      ["/usage", usageRoutes(chat.usage)],
      ["/models", modelRoutes({ catalog, baseRoot: config.model || baseModelId(modelDir) })],
      ["/adapters", adapterAdmin],
      ["/knowledge", knowledgeRoutes(knowledge)],
    ],
    engine,
    knowledge,
    async close() {
      await engine.close();
      await knowledge.close();
    },
  };
}

/** A default adapter given by name, `name@version` or id, stored as the id of one the tenant may use. */
async function defaultAdapterId(resolveModel: ModelResolver, tenant: Tenant, ref: string | null | undefined): Promise<string | null | undefined> {
  if (!ref) return ref;
  let adapterId: string | undefined;
  try {
    adapterId = (await resolveModel(ref, { id: tenant.id, settings: {} })).adapterId;
  } catch {
    adapterId = undefined;
  }
  if (!adapterId) throw badRequest(`No adapter '${ref}' that this tenant may use.`, "defaultAdapter", "adapter_not_found");
  return adapterId;
}

/** The base model's public id: its folder name (`stories260k`, `SmolLM2-135M-Instruct`). */
function baseModelId(modelDir: string): string {
  return resolve(modelDir).split(/[\\/]/).pop()!;
}
