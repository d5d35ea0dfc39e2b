/**
 * What the job runner needs of the training loop: `trainLora`'s types and signature, so the runner
 * (and its tests, which inject a stand-in) depend on the shape, not on onnxruntime.
 */
import type { trainLora } from "./train.ts";

export type { ChatExample, EpochEnd, Evaluation, Hyperparameters as TrainHyperparameters, TrainHooks, TrainProgress, TrainRequest, TrainResult } from "./train.ts";
export type { TrainCheckpoint } from "./checkpoint.ts";

/** `trainLora`'s signature. */
export type TrainFn = typeof trainLora;
