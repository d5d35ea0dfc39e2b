import { join, resolve } from "node:path";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { pino, type DestinationStream, type Logger } from "pino";
import { chatPipeline, createEdge } from "../../edge/edge.ts";
import { EvalWorker } from "../../edge/evals/worker.ts";
import { MonitorService } from "../../edge/monitoring/monitor-service.ts";
import { ApiKeyStore } from "../../services/store/api-keys.ts";
import { lockDataDir, type DataDirLock } from "../../services/store/data-dir-lock.ts";
import { openDatabase } from "../../services/store/db.ts";
import { TenantStore } from "../../services/store/tenants.ts";
import { playgroundAssets } from "./assets.ts";
import type { Config } from "./config.ts";
import { startEmbeddedPlanes } from "./planes.ts";
import { MonitorScheduler } from "./monitor-scheduler.ts";
import { createPrometheus, monitoringMetrics } from "./prometheus.ts";
import { superviseTrainer, type TrainerSupervisor } from "./trainer-supervisor.ts";
import { SWITCHYARD_VERSION } from "./version.ts";

export interface Platform {
  url: string;
  logger: Logger;
  /** The supervised trainer child, when `config.trainer` is on. */
  trainer?: TrainerSupervisor;
  /** The monitors' timer (tests call `tick()` after moving the clock). */
  monitors?: MonitorScheduler;
  /** Stops accepting connections, lets in-flight requests finish (up to the shutdown timeout), closes the database. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where logs go (default stdout). */
  logDestination?: DestinationStream;
  /** Where the generated admin key is announced (default stderr). */
  announce?: (line: string) => void;
  /** The clock of the rate-limit windows and the monitors' schedule, unix ms (default Date.now); tests move it. */
  now?: () => number;
  /** Extra environment of the trainer child (tests: SWITCHYARD_TRAINER_FAKE_TRAIN). */
  trainerEnv?: Record<string, string>;
}

/**
 * The whole platform in one Node process: SQLite file, in-process services, HTTP on host:port. It holds
 * the data dir's lock (throws DataDirInUseError when another live process does) and records its URL
 * there, so `switchyard ingest` sends documents to it instead of writing the indexes itself. With
 * `config.trainer` it supervises the trainer process (`switchyard serve trainer`), which runs the
 * fine-tuning jobs this process only queues.
 */
export async function startPlatform(config: Config, options: StartOptions = {}): Promise<Platform> {
  const lock = lockDataDir(config.dataDir, "server");
  try {
    return await startHoldingLock(config, options, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startHoldingLock(config: Config, options: StartOptions, lock: DataDirLock): Promise<Platform> {
  const logger = pino({ level: config.logLevel, base: { service: "switchyard" } }, options.logDestination ?? process.stdout);
  const dataDir = resolve(config.dataDir);
  const database = openDatabase(join(dataDir, "switchyard.db"));
  const tenants = new TenantStore(database.db);
  const keys = new ApiKeyStore(database.db);
  await ensureAdminKey(keys, config.adminKey, options.announce ?? ((line) => process.stderr.write(`${line}\n`)));

  const prometheus = createPrometheus();
  const embedded = await startEmbeddedPlanes(config, dataDir, database, prometheus.registry, logger);
  const planes = { tenants, keys, ...embedded.planes };
  let evalWorker: EvalWorker | undefined;
  const now = options.now ?? Date.now;
  const metrics = monitoringMetrics(prometheus.registry);
  const monitors = startMonitors(planes, metrics, now, () => evalWorker?.poke(), logger);
  const app = createEdge(
    planes,
    {
      logger,
      metrics: prometheus.http,
      health: {
        checkDatabase: async () => void database.sqlite.prepare("select 1").get(),
        metricsText: async () => (await prometheus.text()) + (await embedded.engineMetricsText()),
      },
      limits: config,
      streamStallTimeoutMs: config.streamStallTimeoutMs,
      baseRoot: embedded.baseRoot,
      now: options.now,
      loraLoadingByPath: embedded.loraLoadingByPath,
      assets: playgroundAssets(),
      version: SWITCHYARD_VERSION,
      onEvalRunCreated: () => evalWorker?.poke(),
      onMonitorCreated: () => void monitors?.tick().catch((err) => logger.error({ err }, "monitor tick failed")),
      monitoringMetrics: metrics,
    },
  );

  const server = await listen(app.fetch, config.host, config.port);
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  lock.setUrl(url);
  evalWorker = startEvalWorker(planes, logger, () => void monitors?.settle().catch((err) => logger.error({ err }, "monitor settle failed")));
  monitors?.start();
  // With a control node (--trainer-url) the jobs run there.
  const trainer = config.trainer && !config.trainerUrl ? superviseTrainer({ env: trainerEnv(config, dataDir, embedded.modelDir, options.trainerEnv), logger }) : undefined;
  logger.info({ url, dataDir }, "switchyard listening");

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      logger.info("shutting down: waiting for in-flight requests");
      await closeServer(server, config.shutdownTimeoutMs);
      await monitors?.stop();
      await evalWorker?.stop();
      await trainer?.stop();
      await embedded.close();
      database.close();
      lock.release();
      logger.info("shutdown complete");
    })());
  return { url, logger, trainer, monitors, close };
}

/** The evaluation runs' loop, in this process (it resumes the runs a previous process left running). */
function startEvalWorker(planes: Parameters<typeof chatPipeline>[0], logger: Logger, onRunFinished: () => void): EvalWorker | undefined {
  const chat = chatPipeline(planes);
  if (!planes.evals || !chat) return undefined;
  return new EvalWorker({ evals: planes.evals, tenants: planes.tenants, chat, onRunFinished, onError: (err, run) => logger.error({ err, run: run.id }, "evaluation run failed") }).start();
}

/** The monitors' scheduler over the evals plane (not started until the server listens). */
function startMonitors(planes: Parameters<typeof chatPipeline>[0], metrics: ReturnType<typeof monitoringMetrics>, now: () => number, onRunCreated: () => void, logger: Logger): MonitorScheduler | undefined {
  const { monitors, evals, inference } = planes;
  if (!monitors || !evals) return undefined;
  const environment = async () => {
    const model = await inference?.model();
    return { model: model?.id, context_length: model?.contextLength, switchyard_version: SWITCHYARD_VERSION };
  };
  const service = new MonitorService({ monitors, evals, tenants: planes.tenants, metrics, now, environment, onRunCreated, onError: (err, monitor) => logger.error({ err, monitor }, "monitor check failed") });
  return new MonitorScheduler({ service, feedback: planes.feedback, now, onError: (err) => logger.error({ err }, "monitor tick failed") });
}

/** The trainer child's settings: this process's environment, with what it resolved (data dir, model folder) and the limits it uses. */
function trainerEnv(config: Config, dataDir: string, modelDir: string, extra: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    ...process.env,
    SWITCHYARD_DATA_DIR: dataDir,
    SWITCHYARD_MODEL: modelDir,
    SWITCHYARD_LOG_LEVEL: config.logLevel,
    SWITCHYARD_MAX_LORA_RANK: String(config.maxLoraRank),
    SWITCHYARD_MAX_UPLOAD_BODY: String(config.maxUploadBody),
    SWITCHYARD_MAX_TRAINING_FILE_LINES: String(config.maxTrainingFileLines),
    ...(config.trainerMemoryMb === undefined ? {} : { SWITCHYARD_TRAINER_MEMORY_MB: String(config.trainerMemoryMb) }),
    ...extra,
  };
}

async function ensureAdminKey(keys: ApiKeyStore, configured: string | undefined, announce: (line: string) => void) {
  if (configured) {
    await keys.ensure(configured, "admin", "configured");
  } else if (!(await keys.hasActiveAdminKey())) {
    const { key } = await keys.issue("admin", null, "generated");
    announce(`Generated admin key (shown once; set SWITCHYARD_ADMIN_KEY to choose your own): ${key}`);
  }
}

/**
 * Idle keep-alive sockets stay open longer than the 60 s idle timeout of common proxies and load
 * balancers (Node's default is 5 s): a server that closes an idle socket first races the client
 * reusing it, and the client's request dies with EPIPE or ECONNRESET. Headers must time out later still.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export function listen(fetch: (request: Request) => Response | Promise<Response>, hostname: string, port: number): Promise<Server> {
  return new Promise((resolveListen, reject) => {
    const server = serve({ fetch, hostname, port }, () => resolveListen(server as Server)) as Server;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
    server.once("error", reject);
  });
}

/** Stops accepting, closes idle keep-alive sockets, and forces the rest after `timeoutMs`. */
export function closeServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolveClose) => {
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    server.close(() => {
      clearTimeout(force);
      resolveClose();
    });
    server.closeIdleConnections();
  });
}
