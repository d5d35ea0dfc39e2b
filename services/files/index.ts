/**
 * The files plane in process: uploaded training data, rows in the store and bytes under
 * `<dataDir>/files/`. Validation counts tokens through the inference port it is given.
 */
import { join } from "node:path";
import type { StoreDb } from "../store/store-db.ts";
import { LocalFileBlobs } from "./blob-store.ts";
import { StoreFiles } from "./store.ts";
import type { Tokenizer, TrainingFileLimits } from "./validate.ts";

export { LocalFileBlobs, type FileBlobs } from "./blob-store.ts";
export { StoreFiles } from "./store.ts";
export { parseTrainingData, type TrainingExample, type TrainingMessage } from "./training-data.ts";
export { validateTrainingFile, type Tokenizer, type TrainingFileLimits } from "./validate.ts";

export interface FileServiceOptions {
  db: StoreDb;
  dataDir: string;
  tokenizer: Tokenizer;
  limits: TrainingFileLimits;
}

/** Opens the blob folder (sweeping a crashed put), removes bytes without a row, and serves the files port. */
export async function createFileService(options: FileServiceOptions): Promise<StoreFiles> {
  const blobs = await LocalFileBlobs.open(join(options.dataDir, "files"));
  const service = new StoreFiles({ db: options.db, blobs, tokenizer: options.tokenizer, limits: options.limits });
  await service.recover();
  return service;
}
