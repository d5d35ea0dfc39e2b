/**
 * Fine-tuning jobs over a real SQLite file in a temp folder: the files plane (word-count tokenizer),
 * the adapter catalog on stories260k's dims, the Trainer port (StoreTrainer) and queues that stand for
 * trainer processes, each on its own connection. Training is a stand-in (`fakeTrain`) unless given.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalAdapterBlobs } from "../../../services/adapters/blob-store.ts";
import { StoreAdapterCatalog } from "../../../services/adapters/catalog.ts";
import { LocalFileBlobs } from "../../../services/files/blob-store.ts";
import { StoreFiles } from "../../../services/files/store.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";
import { fakeTrain } from "../../../trainer/jobs/fake-train.ts";
import { JobQueue } from "../../../trainer/jobs/queue.ts";
import { runJob, type RunnerDeps, type RunResult } from "../../../trainer/jobs/runner.ts";
import { StoreTrainer } from "../../../trainer/jobs/store.ts";
import type { ReportFn } from "../../../trainer/report.ts";
import type { TrainFn } from "../../../trainer/train-api.ts";
import { findSharedModel, STORIES } from "../../helpers/adapters.ts";
import { trainingJsonl } from "../../ports/files.contract.ts";
import { wordTokenizer } from "../../services/files/helpers.ts";

export const BASE = "stories260k";

export interface TestJobs {
  dir: string;
  store: OpenDatabase;
  files: StoreFiles;
  catalog: StoreAdapterCatalog;
  trainer: StoreTrainer;
  /** A clock tests move (unix ms). */
  clock: { now: number };
  /** A queue on its own connection, as one trainer process would have. */
  queue(owner: string, leaseMs?: number): JobQueue;
  upload(tenantId: string, examples?: number): Promise<string>;
  /** `report`: none unless given (the real one is trainer/report.ts `reportTraining`). */
  deps(queue: JobQueue, train?: TrainFn, report?: ReportFn): RunnerDeps;
  /** Claims and runs every queued job with `train` (default the stand-in). */
  drain(train?: TrainFn, report?: ReportFn): Promise<RunResult[]>;
  close(): Promise<void>;
}

export async function openTestJobs(tenantIds: readonly string[] = ["t_acme", "t_globex"]): Promise<TestJobs> {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-jobs-"));
  const path = join(dir, "switchyard.db");
  const store = openDatabase(path);
  for (const id of tenantIds) await store.db.insert(tenants).values({ id, name: id });
  const clock = { now: Date.now() };
  const now = () => clock.now++;
  const files = new StoreFiles({ db: store.db, blobs: await LocalFileBlobs.open(join(dir, "files")), tokenizer: wordTokenizer(), limits: { maxBytes: 1 << 20, maxLines: 1000 }, now });
  const catalog = new StoreAdapterCatalog({ db: store.db, blobs: await LocalAdapterBlobs.open(join(dir, "adapters")), base: { id: BASE, shape: STORIES }, limits: { maxRank: 64 }, maxUploadBytes: 64 << 20 });
  const trainer = new StoreTrainer({ db: store.db, files, baseModel: async () => BASE, adapters: catalog, now });
  const connections: OpenDatabase[] = [];
  const modelDir = findSharedModel("stories260k");
  const handle: TestJobs = {
    dir,
    store,
    files,
    catalog,
    trainer,
    clock,
    queue(owner, leaseMs = 10_000) {
      const connection = openDatabase(path);
      connections.push(connection);
      return new JobQueue({ db: connection.db, owner, leaseMs, now });
    },
    async upload(tenantId, examples = 3) {
      return (await files.upload({ tenantId, filename: "train.jsonl", purpose: "fine-tune", bytes: new TextEncoder().encode(trainingJsonl(examples)) })).id;
    },
    deps: (queue, train = fakeTrain(), report) => ({ queue, files, catalog, train, report, modelDir, cacheDir: join(dir, "compiled"), heartbeatMs: 1000, now }),
    async drain(train, report) {
      const queue = handle.queue("drain");
      const results: RunResult[] = [];
      for (let job = await queue.claim(); job; job = await queue.claim()) results.push(await runJob(job, handle.deps(queue, train, report)));
      return results;
    },
    async close() {
      for (const c of connections) c.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
