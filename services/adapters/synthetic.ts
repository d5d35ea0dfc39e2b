import { createRandom } from "../inference/sampler.ts";
import { writeSafetensors, type TensorToWrite } from "../model/safetensors.ts";
import type { AdapterFiles } from "./archive.ts";
import { LORA_TARGETS, loraModuleName, projectionShape, type LoraTarget } from "../model/lora-layout.ts";
import type { BaseModelShape } from "./peft.ts";

/** Seeded uniform random numbers in [-1, 1), so tests and benchmarks are reproducible. */
export function seededRandom(seed: number): () => number {
  const uniform = createRandom(seed);
  return () => uniform() * 2 - 1;
}

export interface RandomAdapterOptions {
  rank?: number;
  alpha?: number;
  useRslora?: boolean;
  /** Which projections to adapt; "all-linear" (default) writes that string into the config. */
  targets?: LoraTarget[] | "all-linear";
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  /** Magnitude of the random weights. */
  amplitude?: number;
  seed?: number;
  dtype?: TensorToWrite["dtype"];
  /** Extra adapter_config.json fields, written last (for tests of refused options). */
  extraConfig?: Record<string, unknown>;
}

/** The PEFT tensors of a random adapter: A [r, in] and B [out, r] per module, as PEFT saves them. */
export interface RandomAdapter {
  files: AdapterFiles;
  config: Record<string, unknown>;
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
}

const patternFor = <T>(patterns: Record<string, T> | undefined, name: string): T | undefined =>
  patterns ? Object.entries(patterns).find(([k]) => new RegExp(`^(?:.*\\.)?(?:${k})$`).test(name))?.[1] : undefined;

/** Builds a PEFT adapter folder (config + safetensors) with random weights for a Llama-shaped base model. */
export function randomPeftAdapter(base: BaseModelShape, options: RandomAdapterOptions = {}): RandomAdapter {
  const rank = options.rank ?? 4;
  const random = seededRandom(options.seed ?? 1);
  const amplitude = options.amplitude ?? 0.1;
  const targets = options.targets ?? "all-linear";
  const chosen = targets === "all-linear" ? [...LORA_TARGETS] : targets;
  const tensors: RandomAdapter["tensors"] = {};
  for (let layer = 0; layer < base.numLayers; layer++) {
    for (const target of chosen) {
      const name = loraModuleName(layer, target);
      const r = patternFor(options.rankPattern, name) ?? rank;
      const { in: inFeatures, out: outFeatures } = projectionShape(base, target);
      const fill = (n: number) => Float32Array.from({ length: n }, () => random() * amplitude);
      tensors[`base_model.model.${name}.lora_A.weight`] = { shape: [r, inFeatures], data: fill(r * inFeatures) };
      tensors[`base_model.model.${name}.lora_B.weight`] = { shape: [outFeatures, r], data: fill(outFeatures * r) };
    }
  }
  const config: Record<string, unknown> = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "stories260k",
    r: rank,
    lora_alpha: options.alpha ?? rank * 2,
    use_rslora: options.useRslora ?? false,
    target_modules: targets,
    rank_pattern: options.rankPattern ?? {},
    alpha_pattern: options.alphaPattern ?? {},
    lora_dropout: 0,
    fan_in_fan_out: false,
    bias: "none",
    modules_to_save: null,
    use_dora: false,
    ...options.extraConfig,
  };
  const dtype = options.dtype ?? "F32";
  const model = writeSafetensors(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { dtype, shape: t.shape, data: t.data }])));
  return { files: { config: new TextEncoder().encode(JSON.stringify(config, null, 2)), model }, config, tensors };
}

export interface RandomPromptTuningOptions {
  numVirtualTokens?: number;
  /** Magnitude of the random embeddings. */
  amplitude?: number;
  seed?: number;
  dtype?: TensorToWrite["dtype"];
  /** Extra adapter_config.json fields, written last (for tests of refused options). */
  extraConfig?: Record<string, unknown>;
}

/** A PEFT prompt-tuning folder (config + `prompt_embeddings` [N, hidden]) with random embeddings. */
export function randomPromptTuningAdapter(base: Pick<BaseModelShape, "hiddenSize">, options: RandomPromptTuningOptions = {}): { files: AdapterFiles; embeddings: Float32Array } {
  const n = options.numVirtualTokens ?? 4;
  const random = seededRandom(options.seed ?? 1);
  const amplitude = options.amplitude ?? 1;
  const embeddings = Float32Array.from({ length: n * base.hiddenSize }, () => random() * amplitude);
  const config = {
    peft_type: "PROMPT_TUNING",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "stories260k",
    num_virtual_tokens: n,
    token_dim: base.hiddenSize,
    num_transformer_submodules: 1,
    prompt_tuning_init: "RANDOM",
    prompt_tuning_init_text: null,
    inference_mode: true,
    ...options.extraConfig,
  };
  const model = writeSafetensors({ prompt_embeddings: { dtype: options.dtype ?? "F32", shape: [n, base.hiddenSize], data: embeddings } }, { format: "pt" });
  return { files: { config: new TextEncoder().encode(JSON.stringify(config, null, 2)), model }, embeddings };
}
