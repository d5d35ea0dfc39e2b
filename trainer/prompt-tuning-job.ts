/**
 * A supervised fine-tuning job with `adapter_type: "prompt_tuning"`: its chat examples encoded as for
 * LoRA (the validation file, else a held-out 10%), trained by trainPromptTuning (trainer/prompt-tuning.ts)
 * and returned in the job runner's TrainResult shape, the adapter being the PEFT prompt-tuning folder of
 * the best evaluated embeddings (lowest validation loss; step 0 when training never beat the init).
 *
 * Defaults: 8 virtual tokens; the "text" init when an init text is given, else "random" (PEFT's);
 * learning rate 3e-2 (prompt tuning wants rates well above LoRA's; `learning_rate_multiplier` scales
 * this one); 3 epochs of batches of 8; a validation every tenth of the steps. The rate is constant and
 * there is no weight decay, no early stopping, no packing, no state checkpoints (a reclaimed job starts
 * over) and no epoch checkpoints: the best embeddings are published once, at the end.
 */
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename } from "node:path";
import { PlaneError } from "../ports/errors.ts";
import { maxVirtualTokens } from "../services/adapters/prompt-tuning.ts";
import { loadChatTemplate } from "../services/model/chat-template.ts";
import { loadDecoderConfig } from "../services/model/config.ts";
import { loadTokenizer } from "../services/model/tokenizer.ts";
import { encodeExample, holdOut, type ChatEncoder, type ChatExample } from "./dataset.ts";
import { exportPromptTuning, trainPromptTuning, type PromptInit } from "./prompt-tuning.ts";
import type { TrainHooks, TrainResult } from "./train-api.ts";

export interface PromptTuningHyperparameters {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  maxSteps?: number;
  evalEvery?: number;
  numVirtualTokens?: number;
  init?: "text" | "random";
  initText?: string;
}

export interface PromptTuningJobRequest {
  modelDir: string;
  /** Where the graphs are compiled (a scratch folder under it); default the OS temp folder. */
  cacheDir?: string;
  training: ChatExample[];
  validation?: ChatExample[];
  hyperparameters: PromptTuningHyperparameters;
  seed: number;
}

export const PROMPT_TUNING_DEFAULTS = { numVirtualTokens: 8, learningRate: 3e-2, epochs: 3, batchSize: 8 } as const;

/** `trainPromptTuningJob`'s signature (the runner's injectable loop). */
export type PromptTuningTrainFn = typeof trainPromptTuningJob;

export async function trainPromptTuningJob(request: PromptTuningJobRequest, hooks: TrainHooks = {}): Promise<TrainResult> {
  const h = request.hyperparameters;
  const [config, tokenizer, template] = await Promise.all([loadDecoderConfig(request.modelDir), loadTokenizer(request.modelDir), loadChatTemplate(request.modelDir)]);
  const n = h.numVirtualTokens ?? PROMPT_TUNING_DEFAULTS.numVirtualTokens;
  const limit = maxVirtualTokens(config) ?? config.maxPositionEmbeddings - 1;
  if (n > limit) throw invalid(`num_virtual_tokens ${n} is more than ${limit}, what the adapter catalog takes for a context of ${config.maxPositionEmbeddings} tokens`, "num_virtual_tokens");
  const initText = h.init === "random" ? undefined : h.initText;
  let init: PromptInit = "random";
  if (initText !== undefined) {
    const ids = tokenizer.encode(initText, { addSpecialTokens: false });
    if (ids.length === 0) throw invalid("prompt_tuning_init_text has no tokens", "prompt_tuning_init_text");
    init = { text: ids };
  }
  const encoder: ChatEncoder = { tokenizer, template, eosTokenId: config.eosTokenIds[0] ?? tokenizer.eosTokenIds[0] };
  const maxLength = config.maxPositionEmbeddings - n;
  const split = request.validation && request.validation.length > 0 ? { training: request.training, validation: request.validation } : holdOut(request.training, request.seed);
  const encode = (examples: ChatExample[], what: string) => {
    const kept = examples.flatMap((example) => {
      const encoded = encodeExample(example, encoder, maxLength);
      return encoded ? [{ example, encoded }] : [];
    });
    if (kept.length === 0) throw new Error(`no ${what} example has an assistant token within ${maxLength} tokens`);
    return kept;
  };
  const training = encode(split.training, "training").map((k) => k.encoded);
  const validation = encode(split.validation, "validation");
  const batchSize = Math.min(h.batchSize ?? PROMPT_TUNING_DEFAULTS.batchSize, training.length);
  const totalSteps = Math.min(h.maxSteps ?? Infinity, (h.epochs ?? PROMPT_TUNING_DEFAULTS.epochs) * Math.ceil(training.length / batchSize));
  const learningRate = h.learningRate ?? PROMPT_TUNING_DEFAULTS.learningRate;
  const workDir = request.cacheDir ?? tmpdir();
  await mkdir(workDir, { recursive: true });
  const result = await trainPromptTuning({
    modelDir: request.modelDir,
    workDir,
    training,
    validation: validation.map((k) => k.encoded),
    numVirtualTokens: n,
    init,
    steps: totalSteps,
    learningRate,
    batchSize,
    seed: request.seed,
    evalEvery: h.evalEvery ?? Math.max(1, Math.ceil(totalSteps / 10)),
    shouldStop: () => hooks.signal?.aborted === true || hooks.shouldStop?.() === true,
    onStep: (step, trainLoss, info) =>
      hooks.onStep?.({ step, totalSteps, trainLoss, validLoss: info.validLoss, learningRate, gradNorm: info.gradNorm, tokensPerSecond: info.tokens / info.seconds }),
  });
  const { best } = result;
  // Token accuracy is not measured by the prompt-tuning loop.
  const evaluation = (loss: number) => ({ loss, tokenAccuracy: Number.NaN });
  return {
    adapter: exportPromptTuning(best.embeddings, { numVirtualTokens: n, hiddenSize: config.hiddenSize, baseModel: basename(request.modelDir), initText }),
    bestStep: best.step,
    steps: result.steps,
    trainedTokens: result.tokens,
    baseValidLoss: result.validationLoss.before,
    bestValidLoss: best.validLoss,
    baseEvaluation: evaluation(result.validationLoss.before),
    bestEvaluation: evaluation(best.validLoss),
    validation: validation.map((k) => k.example),
    stoppedEarly: false,
    cancelled: result.cancelled,
  };
}

function invalid(message: string, field: string): PlaneError {
  return new PlaneError("invalid_request", `Invalid prompt-tuning hyperparameters: ${message}.`, { code: "invalid_hyperparameters", param: `method.supervised.hyperparameters.${field}` });
}
