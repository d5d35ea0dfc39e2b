/**
 * Prompt tuning (PEFT's PROMPT_TUNING) by the trainer's reverse-mode pass: the base model and its
 * LoRA inputs (fed zeros) are frozen and only the N virtual-token embeddings are trained, through
 * the gradient of the masked causal-LM loss w.r.t. the training graph's `virtual_embeddings` input.
 *
 * Each example becomes N virtual tokens (ids vocab + k, positions 0..N-1, as PEFT numbers them),
 * then its own tokens; the virtual positions are never counted in the loss (PEFT's -100 labels).
 * Initialisation as PEFT: "text" takes the embedding rows of the init text's tokens (repeated or cut
 * to N), "random" draws N(0, 1) as torch.nn.Embedding does. AdamW without weight decay, constant rate.
 * The validation loss is measured before training, every `evalEvery` steps and after the last step;
 * the embeddings of the lowest one are kept as `best` (step 0: the initial embeddings). The result
 * exports as a PEFT prompt-tuning folder that the adapter catalog imports; fine-tuning jobs with
 * `adapter_type: "prompt_tuning"` run it through trainer/prompt-tuning-job.ts.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { AdapterFiles } from "../services/adapters/archive.ts";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { appendGradients } from "../services/model/graph/autodiff.ts";
import { writeOnnx } from "../services/model/graph/onnx.ts";
import { appendCausalLmLoss } from "../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../services/model/llama/training-graph.ts";
import { LORA_TARGETS, loraInputName, projectionShape } from "../services/model/lora-layout.ts";
import { VIRTUAL_EMBEDDINGS_INPUT } from "../services/model/prompt-tuning.ts";
import { openWeights, writeSafetensors } from "../services/model/safetensors.ts";
import { createRandom } from "../services/inference/sampler.ts";
import { chunks, epochOrder, makeBatch, type Batch, type EncodedExample } from "./dataset.ts";
import { AdamW } from "./optim/adamw.ts";
import { trainerSessionOptions } from "./step-graph.ts";

export type PromptInit = { text: number[] } | "random";

export interface PromptTuningRequest {
  modelDir: string;
  /** Scratch folder for the compiled graphs (removed after). */
  workDir: string;
  training: EncodedExample[];
  validation: EncodedExample[];
  numVirtualTokens: number;
  /** "random", or the init text's token ids. */
  init: PromptInit;
  steps: number;
  learningRate: number;
  batchSize: number;
  seed: number;
  threads?: number;
  /** Validation every this many steps (and after the last); default: only after the last. */
  evalEvery?: number;
  /** Checked before each step: true ends training there (`cancelled`). */
  shouldStop?(): boolean;
  onStep?(step: number, loss: number, info: PromptTuningStep): void | Promise<void>;
}

/** One step's numbers besides its loss. */
export interface PromptTuningStep {
  /** When this step was evaluated. */
  validLoss?: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
}

export interface PromptTuningResult {
  /** [numVirtualTokens, hidden] */
  embeddings: Float32Array;
  validationLoss: { before: number; after: number };
  /** The evaluated embeddings with the lowest validation loss (step 0: the initial ones). */
  best: { step: number; validLoss: number; embeddings: Float32Array };
  steps: number;
  /** `shouldStop` ended training before `steps`. */
  cancelled: boolean;
  /** Input tokens (virtual ones included) the training steps ran over. */
  tokens: number;
  /** Wall time of the training steps (validation and graph building not included). */
  seconds: number;
}

export async function trainPromptTuning(request: PromptTuningRequest): Promise<PromptTuningResult> {
  const config = await loadDecoderConfig(request.modelDir);
  const weights = await openWeights(request.modelDir);
  const n = request.numVirtualTokens;
  let sessions: { train: ort.InferenceSession; evaluate: ort.InferenceSession };
  let embeddings: Float32Array;
  try {
    embeddings = initialEmbeddings(config, weights.getF32("model.embed_tokens.weight"), n, request.init, request.seed);
    sessions = await openSessions(config, weights, request.workDir, request.threads);
  } finally {
    weights.close();
  }
  const zeros = zeroLora(config);
  const prepend = (e: EncodedExample) => withVirtualTokens(e, n, config.vocabSize);
  const feeds = (batch: Batch) => ({ ...batchFeeds(batch), ...zeros, [VIRTUAL_EMBEDDINGS_INPUT]: new ort.Tensor("float32", embeddings, [n, config.hiddenSize]) });
  const validate = async () => {
    let sum = 0;
    let items = 0;
    for (const group of chunks(request.validation.map(prepend), request.batchSize)) {
      const batch = makeBatch(group, 0);
      sum += ((await sessions.evaluate.run(feeds(batch))).loss!.data as Float32Array)[0]! * batch.items;
      items += batch.items;
    }
    return sum / items;
  };
  try {
    const before = await validate();
    const best = { step: 0, validLoss: before, embeddings: embeddings.slice() };
    const evalEvery = request.evalEvery ?? request.steps;
    let seconds = 0;
    const optimizer = new AdamW([embeddings.length], { weightDecay: 0 });
    const training = request.training.map(prepend);
    let tokens = 0;
    let step = 0;
    let after: number | undefined;
    let cancelled = false;
    for (let epoch = 0; step < request.steps && !cancelled; epoch++) {
      const order = epochOrder(training.length, request.seed, epoch).map((i) => training[i]!);
      for (const group of chunks(order, request.batchSize)) {
        if (step >= request.steps) break;
        if (request.shouldStop?.()) {
          cancelled = true;
          break;
        }
        const started = performance.now();
        const batch = makeBatch(group, 0);
        const out = await sessions.train.run(feeds(batch));
        const grad = out[`grad.${VIRTUAL_EMBEDDINGS_INPUT}`]!.data as Float32Array;
        const gradNorm = Math.sqrt(grad.reduce((sum, g) => sum + g * g, 0));
        optimizer.update([embeddings], [grad], request.learningRate);
        const stepSeconds = (performance.now() - started) / 1000;
        seconds += stepSeconds;
        tokens += batch.tokens;
        step++;
        after = step % evalEvery === 0 || step === request.steps ? await validate() : undefined;
        if (after !== undefined && after < best.validLoss) Object.assign(best, { step, validLoss: after, embeddings: embeddings.slice() });
        await request.onStep?.(step, (out.loss!.data as Float32Array)[0]!, { validLoss: after, gradNorm, tokens: batch.tokens, seconds: stepSeconds });
      }
    }
    return { embeddings, validationLoss: { before, after: after ?? (await validate()) }, best, steps: step, cancelled, tokens, seconds };
  } finally {
    await Promise.all([sessions.train.release(), sessions.evaluate.release()]);
  }
}

/** The example with N virtual tokens in front, never counted in the loss. */
export function withVirtualTokens(e: EncodedExample, n: number, vocabSize: number): EncodedExample {
  const ids = Array.from({ length: n }, (_, k) => vocabSize + k);
  return { ...e, ids: [...ids, ...e.ids], weights: [...ids.map(() => 0), ...e.weights] };
}

/** PEFT's initialisations: the init text's token embeddings (cycled to N), or N(0, 1). */
export function initialEmbeddings(config: DecoderConfig, table: Float32Array, n: number, init: PromptInit, seed: number): Float32Array {
  const h = config.hiddenSize;
  const out = new Float32Array(n * h);
  if (init === "random") {
    const uniform = createRandom(seed);
    for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    return out;
  }
  if (init.text.length === 0) throw new Error("prompt tuning init text has no tokens");
  for (let k = 0; k < n; k++) {
    const token = init.text[k % init.text.length]!;
    out.set(table.subarray(token * h, (token + 1) * h), k * h);
  }
  return out;
}

/** The PEFT folder: adapter_config.json and adapter_model.safetensors holding `prompt_embeddings`. */
export function exportPromptTuning(embeddings: Float32Array, options: { numVirtualTokens: number; hiddenSize: number; baseModel: string; initText?: string }): AdapterFiles {
  const config = {
    peft_type: "PROMPT_TUNING",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: options.baseModel,
    num_virtual_tokens: options.numVirtualTokens,
    token_dim: options.hiddenSize,
    num_transformer_submodules: 1,
    prompt_tuning_init: options.initText === undefined ? "RANDOM" : "TEXT",
    prompt_tuning_init_text: options.initText ?? null,
    inference_mode: true,
  };
  const model = writeSafetensors({ prompt_embeddings: { dtype: "F32", shape: [options.numVirtualTokens, options.hiddenSize], data: embeddings } }, { format: "pt" });
  return { config: new TextEncoder().encode(JSON.stringify(config, null, 2)), model };
}

async function openSessions(config: DecoderConfig, weights: Parameters<typeof buildTrainingGraph>[1], workDir: string, threads?: number) {
  const dir = await mkdtemp(join(workDir, "prompt-tuning-"));
  try {
    const train = buildTrainingGraph(config, weights, { virtualTokens: true });
    const { loss } = appendCausalLmLoss(train, train.outputs.find((v) => v.name === "logits")!);
    appendGradients(train, loss, [train.inputs.find((v) => v.name === VIRTUAL_EMBEDDINGS_INPUT)!]);
    train.outputs.splice(train.outputs.findIndex((v) => v.name === "logits"), 1);
    const evaluate = buildTrainingGraph(config, weights, { virtualTokens: true });
    appendCausalLmLoss(evaluate, evaluate.outputs.find((v) => v.name === "logits")!);
    evaluate.outputs.splice(evaluate.outputs.findIndex((v) => v.name === "logits"), 1);
    const options = trainerSessionOptions(threads);
    return {
      train: await ort.InferenceSession.create((await writeOnnx(train, join(dir, "train"))).modelPath, options),
      evaluate: await ort.InferenceSession.create((await writeOnnx(evaluate, join(dir, "eval"))).modelPath, options),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Zero LoRA inputs (rank 1) for every target: the prompt alone is trained. */
function zeroLora(config: DecoderConfig): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of LORA_TARGETS) {
      const { in: inSize, out: outSize } = projectionShape(config, target);
      out[loraInputName(layer, target, "a")] = new ort.Tensor("float32", new Float32Array(inSize), [inSize, 1]);
      out[loraInputName(layer, target, "b")] = new ort.Tensor("float32", new Float32Array(outSize), [1, outSize]);
    }
  }
  return out;
}

function batchFeeds(batch: Batch): Record<string, ort.Tensor> {
  const dims = [batch.batch, batch.seq];
  return {
    input_ids: new ort.Tensor("int64", batch.inputIds, dims),
    position_ids: new ort.Tensor("int64", batch.positionIds, dims),
    attention_mask: new ort.Tensor("int64", batch.attentionMask, dims),
    labels: new ort.Tensor("int64", batch.labels, dims),
    loss_weights: new ort.Tensor("float32", batch.lossWeights, dims),
  };
}
