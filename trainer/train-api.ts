/**
 * The training loop's interface (trainer/train.ts, `trainLora`, lands separately): types only, so the
 * job runner compiles and its tests inject a stand-in through the same `TrainFn` type.
 */
import type { AdapterFiles } from "../services/adapters/archive.ts";
import type { TrainingExample } from "../services/files/training-data.ts";
import type { LoraTarget } from "../services/model/lora-layout.ts";

/** One parsed chat example of a training file (parseTrainingData). */
export type ChatExample = TrainingExample;

export interface TrainHyperparameters {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  rank?: number;
  alpha?: number;
  targetModules?: LoraTarget[];
  warmupRatio?: number;
  weightDecay?: number;
  maxSteps?: number;
  evalEvery?: number;
  patience?: number;
  maxGradNorm?: number;
}

export interface TrainRequest {
  modelDir: string;
  training: ChatExample[];
  validation?: ChatExample[];
  hyperparameters: TrainHyperparameters;
  seed: number;
  cacheDir?: string;
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  trainLoss: number;
  validLoss?: number;
  tokenAccuracy?: number;
  learningRate: number;
  gradNorm: number;
  tokensPerSecond: number;
}

export interface TrainHooks {
  onStep?(p: TrainProgress): void | Promise<void>;
  shouldStop?(): boolean;
  signal?: AbortSignal;
}

export interface TrainResult {
  adapter: AdapterFiles;
  bestStep: number;
  steps: number;
  trainedTokens: number;
  baseValidLoss: number;
  bestValidLoss: number;
  stoppedEarly: boolean;
  cancelled: boolean;
}

/** `trainLora`'s signature. */
export type TrainFn = (request: TrainRequest, hooks?: TrainHooks) => Promise<TrainResult>;
