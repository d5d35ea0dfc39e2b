/**
 * The trainer process (`switchyard serve trainer`): the job worker loop alone, over the data dir's
 * SQLite file (WAL, shared with the server) and the model. It never takes the data dir's lock, which
 * the server holds: it writes only job rows, events, checkpoints and new adapters (rows, and folders
 * put whole by rename), none of which the server keeps in memory, and it opens the adapter and file
 * folders as readers (no crash sweep, which is the server's at its start). Jobs' resumable state
 * checkpoints go to `<data dir>/training/<job id>/` (trainer/jobs/runner.ts), which only trainers touch.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { AdapterCatalog } from "../../ports/adapters.ts";
import { StoreAdapterCatalog } from "../../services/adapters/catalog.ts";
import { LocalAdapterBlobs } from "../../services/adapters/blob-store.ts";
import { LocalFileBlobs } from "../../services/files/blob-store.ts";
import { StoreFiles } from "../../services/files/store.ts";
import type { Tokenizer } from "../../services/files/validate.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import { openDatabase } from "../../services/store/db.ts";
import { JobQueue } from "../../trainer/jobs/queue.ts";
import { TrainerWorker } from "../../trainer/jobs/worker.ts";
import { reportPreferences } from "../../trainer/dpo/report.ts";
import { reportTraining, type ReportFn } from "../../trainer/report.ts";
import type { TrainFn } from "../../trainer/train-api.ts";
import type { Config } from "./config.ts";
import { baseModelId, resolveNodeModel } from "./model.ts";

export interface TrainerTimings {
  leaseMs: number;
  heartbeatMs: number;
  pollMs: number;
}

/** The config's lease and heartbeat (SWITCHYARD_TRAINER_LEASE_MS, SWITCHYARD_TRAINER_HEARTBEAT_MS), polling every second. */
export function trainerTimings(config: Config): TrainerTimings {
  if (config.trainerHeartbeatMs >= config.trainerLeaseMs) throw new Error(`the trainer heartbeat (${config.trainerHeartbeatMs} ms) must be shorter than its lease (${config.trainerLeaseMs} ms)`);
  return { leaseMs: config.trainerLeaseMs, heartbeatMs: config.trainerHeartbeatMs, pollMs: Math.min(1_000, config.trainerHeartbeatMs) };
}

export interface TrainerProcess {
  worker: TrainerWorker;
  close(): Promise<void>;
}

/** The trainer never validates uploads, so it has no tokenizer. */
const noTokenizer: Tokenizer = {
  model: () => Promise.reject(new Error("the trainer process validates no uploads")),
  encode: () => Promise.reject(new Error("the trainer process validates no uploads")),
};

/**
 * `report`: the succeeded job's result (default trainer/report.ts, a serving engine of its own for the time it answers).
 * `catalog`: the catalog jobs publish through; default a reader of the data dir's (the control node passes the one it serves).
 */
export async function startTrainer(config: Config, train: TrainFn, logger: Logger, timings: TrainerTimings = trainerTimings(config), report: ReportFn = reportTraining, published?: AdapterCatalog): Promise<TrainerProcess> {
  const dataDir = resolve(config.dataDir);
  const database = openDatabase(join(dataDir, "switchyard.db"));
  const modelDir = await resolveNodeModel(config, dataDir);
  const shape = await loadDecoderConfig(modelDir);
  const catalog = published ?? new StoreAdapterCatalog({
    db: database.db,
    blobs: new LocalAdapterBlobs(join(dataDir, "adapters"), (id) => join("adapters", id)),
    base: { id: baseModelId(modelDir), shape },
    limits: { maxRank: config.maxLoraRank },
    maxUploadBytes: config.maxUploadBody,
  });
  const files = new StoreFiles({ db: database.db, blobs: LocalFileBlobs.reader(join(dataDir, "files")), tokenizer: noTokenizer, limits: { maxBytes: config.maxUploadBody, maxLines: config.maxTrainingFileLines } });
  const queue = new JobQueue({ db: database.db, owner: `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`, leaseMs: timings.leaseMs });
  const worker = new TrainerWorker({
    queue,
    files,
    catalog,
    train,
    report,
    reportDpo: reportPreferences,
    modelDir,
    cacheDir: join(dataDir, "compiled"),
    memoryLimitMb: config.trainerMemoryMb,
    checkpointDir: join(dataDir, "training"),
    heartbeatMs: timings.heartbeatMs,
    pollMs: timings.pollMs,
    onDone: (jobId, result) => logger.info({ jobId, result }, "fine-tuning job done"),
    onError: (err) => logger.error({ err }, "trainer loop error"),
  });
  worker.start();
  logger.info({ pid: process.pid, owner: queue.owner, modelDir }, "trainer started");
  return {
    worker,
    async close() {
      await worker.stop();
      database.close();
      logger.info("trainer stopped");
    },
  };
}
