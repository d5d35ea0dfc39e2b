/**
 * The control node's planes (`switchyard serve trainer --port N`): it owns its data dir's store for
 * what the trainer needs — the adapter catalog (rows and blobs; it sweeps what a crash left, as
 * `switchyard start` does), the uploaded files (validated against the model's tokenizer alone, no
 * engine) and the fine-tuning jobs — and runs the trainer's worker loop (hosts/node/trainer.ts) over
 * them, publishing through the catalog it serves; with SWITCHYARD_TRAINER=off it only serves, and the
 * jobs are run by trainer processes (`switchyard serve trainer` without --port) on the same data dir. Inference nodes read the adapters it catalogs from
 * the same data dir (its SQLite file and adapters/ folder), so they are started on it.
 */
import type { Logger } from "pino";
import type { AdapterCatalog } from "../../../ports/adapters.ts";
import type { Files } from "../../../ports/files.ts";
import type { Trainer } from "../../../ports/trainer.ts";
import { createAdapterService } from "../../../services/adapters/index.ts";
import { createFileService } from "../../../services/files/index.ts";
import { loadPromptEncoder } from "../../../services/inference/prompt-encoder.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import type { OpenDatabase } from "../../../services/store/db.ts";
import { StoreTrainer } from "../../../trainer/jobs/store.ts";
import type { Config } from "../config.ts";
import { baseModelId, resolveNodeModel } from "../model.ts";
import { loadTrainFn } from "../train-fn.ts";
import { startTrainer, type TrainerProcess } from "../trainer.ts";

export interface ControlPlanes {
  trainer: Trainer;
  adapters: AdapterCatalog;
  files: Files;
  /** The worker loop running the jobs (none with `config.trainer` off). */
  worker?: TrainerProcess;
}

/** `env` picks the training loop (hosts/node/train-fn.ts). */
export async function loadControlPlanes(config: Config, dataDir: string, database: OpenDatabase, logger: Logger, env: Record<string, string | undefined>): Promise<ControlPlanes> {
  const modelDir = await resolveNodeModel(config, dataDir, (p) => logger.debug({ file: p.file, received: p.received, total: p.total }, "downloading model"));
  const [shape, encoder] = await Promise.all([loadDecoderConfig(modelDir), loadPromptEncoder(modelDir, baseModelId(modelDir))]);
  const { catalog } = await createAdapterService({
    db: database.db,
    dataDir,
    base: { id: baseModelId(modelDir), shape },
    limits: { maxRank: config.maxLoraRank },
    // No engine here: the cache is never filled; a deletion removes the files at once.
    cacheBudgetBytes: 1,
    maxUploadBytes: config.maxUploadBody,
    loraDir: config.loraDir,
  });
  const files = await createFileService({ db: database.db, dataDir, tokenizer: encoder, limits: { maxBytes: config.maxUploadBody, maxLines: config.maxTrainingFileLines } });
  const trainer = new StoreTrainer({ db: database.db, files, baseModel: () => catalog.baseModel(), adapters: catalog });
  const worker = config.trainer ? await startTrainer({ ...config, model: modelDir, dataDir }, await loadTrainFn(env), logger, undefined, undefined, catalog) : undefined;
  return { trainer, adapters: catalog, files, worker };
}
