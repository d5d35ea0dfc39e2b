/**
 * A stand-in for the training loop (trainLora) with its exact signature, for tests and for the trainer
 * process under SWITCHYARD_TRAINER_FAKE_TRAIN=1 (tests only): it reports `maxSteps` (default 3) steps
 * of falling loss, `stepMs` apart, honours shouldStop/signal between steps, and returns a random PEFT
 * adapter of the model's dims (services/adapters/synthetic.ts), which the catalog accepts and chat serves.
 * With `earlyStop`, the validation loss is lowest at `bestStep` and rises after it, and training stops
 * early after step `atStep`, as the real loop's patience would stop it.
 */
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { loadDecoderConfig } from "../../services/model/config.ts";
import type { TrainFn, TrainProgress } from "../train-api.ts";
import { DEFAULT_HYPERPARAMETERS } from "../train.ts";

export interface FakeTrainOptions {
  stepMs?: number;
  steps?: number;
  /** Throws this message at this step (tests of a failing job). */
  failAt?: { step: number; message: string };
  /** The best validation loss at `bestStep`, and an early stop after `atStep` (bestStep <= atStep < the job's steps). */
  earlyStop?: { bestStep: number; atStep: number };
}

export function fakeTrain(options: FakeTrainOptions = {}): TrainFn {
  return async (request, hooks = {}) => {
    const shape = await loadDecoderConfig(request.modelDir);
    const h = request.hyperparameters;
    const totalSteps = h.maxSteps ?? options.steps ?? 3;
    const early = options.earlyStop;
    const validLoss = (step: number) => (early ? 3 / Math.min(step, early.bestStep) + 0.1 * Math.max(0, step - early.bestStep) : 3 / step) + 0.1;
    const tokensPerStep = request.training.reduce((n, e) => n + e.messages.reduce((m, msg) => m + msg.content.length, 0), 0);
    let steps = 0;
    for (let step = 1; step <= totalSteps; step++) {
      if (hooks.shouldStop?.() || hooks.signal?.aborted) break;
      await new Promise((resolve) => setTimeout(resolve, options.stepMs ?? 0));
      if (options.failAt?.step === step) throw new Error(options.failAt.message);
      const loss = 3 / step;
      const progress: TrainProgress = { step, totalSteps, trainLoss: loss, learningRate: h.learningRate ?? DEFAULT_HYPERPARAMETERS.learningRate, gradNorm: 1 / step, tokensPerSecond: 1000 };
      if (request.validation) progress.validLoss = validLoss(step);
      progress.tokenAccuracy = 1 - 1 / (step + 1);
      await hooks.onStep?.(progress);
      steps = step;
      if (early?.atStep === step) break;
    }
    const stoppedEarly = early !== undefined && early.atStep < totalSteps && steps === early.atStep;
    const bestStep = stoppedEarly ? early.bestStep : steps;
    const cancelled = steps < totalSteps && !stoppedEarly;
    const adapter = randomPeftAdapter(shape, { rank: h.rank ?? 4, alpha: h.alpha, targets: h.targetModules ?? ["q_proj", "v_proj"], seed: request.seed, amplitude: 0.01 });
    const bestValid = request.validation ? validLoss(Math.max(1, bestStep)) : Number.NaN;
    const baseValid = request.validation ? 3.1 : Number.NaN;
    return {
      adapter: adapter.files,
      bestStep,
      steps,
      trainedTokens: tokensPerStep * steps,
      baseValidLoss: baseValid,
      bestValidLoss: bestValid,
      baseEvaluation: { loss: baseValid, tokenAccuracy: 0.5 },
      bestEvaluation: { loss: bestValid, tokenAccuracy: 1 - 1 / (bestStep + 1) },
      validation: request.validation ?? [],
      stoppedEarly,
      cancelled,
    };
  };
}
