/**
 * Fine-tuning jobs: the Trainer port over the store (the server process: rows only), and the queue,
 * runner and worker loop the trainer process runs (`switchyard serve trainer`).
 */
export { StoreTrainer, DEFAULT_PAGE, MAX_PAGE, type StoreTrainerOptions } from "./store.ts";
export { JobQueue, type Heartbeat, type JobQueueOptions, type Outcome } from "./queue.ts";
export { runJob, defaultAdapterName, trainHyperparameters, BASE_LEARNING_RATE, type RunnerDeps, type RunResult } from "./runner.ts";
export { TrainerWorker, type WorkerOptions } from "./worker.ts";
