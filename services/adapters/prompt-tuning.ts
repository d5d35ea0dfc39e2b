/**
 * PEFT prompt-tuning adapters (peft_type "PROMPT_TUNING"): adapter_config.json with
 * num_virtual_tokens, token_dim and prompt_tuning_init, and adapter_model.safetensors holding one
 * tensor, `prompt_embeddings` [num_virtual_tokens, hidden] (what PEFT's get_peft_model_state_dict
 * saves for prompt learning). Checked against the base model's hidden size and context; every
 * refusal is an AdapterError naming the reason.
 */
import { z } from "zod";
import { HeaderLimitError, parseSafetensorsBytes, type WeightStore } from "../model/safetensors.ts";
import type { PromptWeights } from "../model/prompt-tuning.ts";
import type { AdapterFiles } from "./archive.ts";
import { AdapterError } from "./errors.ts";
import { MAX_ADAPTER_WEIGHT, type BaseModelShape } from "./peft.ts";

/** PEFT's name for the one tensor of a prompt-tuning adapter. */
export const PROMPT_EMBEDDINGS_TENSOR = "prompt_embeddings";

/** PEFT's PromptTuningInit values. */
export const PROMPT_TUNING_INITS = ["RANDOM", "TEXT", "SAMPLE_VOCAB"] as const;

const configSchema = z
  .object({
    peft_type: z.literal("PROMPT_TUNING"),
    task_type: z.string().nullish(),
    num_virtual_tokens: z.number().int().positive(),
    token_dim: z.number().int().positive().nullish(),
    num_transformer_submodules: z.number().int().positive().nullish(),
    prompt_tuning_init: z.enum(PROMPT_TUNING_INITS).default("RANDOM"),
    prompt_tuning_init_text: z.string().nullish(),
    base_model_name_or_path: z.string().nullish(),
  })
  .loose();

export type PromptTuningConfig = z.infer<typeof configSchema>;

export interface ValidatedPromptTuning {
  config: PromptTuningConfig;
  store: WeightStore;
  numVirtualTokens: number;
}

/** The most virtual tokens accepted: half the context, so a prompt and its answer still fit. */
export function maxVirtualTokens(base: BaseModelShape): number | undefined {
  return base.maxPositionEmbeddings === undefined ? undefined : Math.floor(base.maxPositionEmbeddings / 2);
}

const invalid = (message: string) => new AdapterError("invalid_config", `adapter_config.json: ${message}`);

function parseConfig(json: unknown, base: BaseModelShape): PromptTuningConfig {
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw invalid(z.prettifyError(parsed.error));
  const c = parsed.data;
  const refuse = (message: string) => new AdapterError("unsupported_option", `adapter_config.json: ${message}`);
  if (c.task_type != null && c.task_type !== "CAUSAL_LM") throw refuse(`task_type "${c.task_type}" is not supported; only CAUSAL_LM prompt tuning can be served`);
  if (c.num_transformer_submodules != null && c.num_transformer_submodules !== 1) {
    throw refuse(`num_transformer_submodules ${c.num_transformer_submodules} is not supported: a decoder-only model has 1 (2 is for encoder-decoder models)`);
  }
  if (c.token_dim != null && c.token_dim !== base.hiddenSize) {
    throw new AdapterError("shape_mismatch", `adapter_config.json: token_dim ${c.token_dim} is not the base model's hidden size ${base.hiddenSize}`);
  }
  const limit = maxVirtualTokens(base);
  if (limit !== undefined && c.num_virtual_tokens > limit) {
    throw new AdapterError(
      "too_many_virtual_tokens",
      `adapter_config.json: num_virtual_tokens ${c.num_virtual_tokens} is more than ${limit}, half the base model's context of ${base.maxPositionEmbeddings} tokens`,
    );
  }
  return c;
}

function openStore(bytes: Uint8Array): WeightStore {
  try {
    return parseSafetensorsBytes(bytes, "adapter_model.safetensors", { maxTensors: 4, maxHeaderBytes: 64 * 1024, reason: "a prompt-tuning adapter holds one tensor" });
  } catch (e) {
    if (e instanceof HeaderLimitError) throw new AdapterError("too_many_tensors", e.message);
    throw new AdapterError("corrupt_safetensors", (e as Error).message);
  }
}

/** Config and tensor structure: names, shape, dtype (the parser refuses non-float dtypes). */
export function checkPromptTuning(configJson: unknown, files: AdapterFiles, base: BaseModelShape): ValidatedPromptTuning {
  const config = parseConfig(configJson, base);
  const store = openStore(files.model);
  try {
    const names = store.names();
    if (!names.includes(PROMPT_EMBEDDINGS_TENSOR)) {
      throw new AdapterError("missing_tensor", `adapter_model.safetensors has no "${PROMPT_EMBEDDINGS_TENSOR}" tensor (it has ${names.length ? names.map((n) => `"${n}"`).join(", ") : "none"})`);
    }
    const extra = names.find((n) => n !== PROMPT_EMBEDDINGS_TENSOR);
    if (extra) throw new AdapterError("unknown_module", `tensor "${extra}" is not part of a prompt-tuning adapter (only "${PROMPT_EMBEDDINGS_TENSOR}")`);
    const { shape } = store.info(PROMPT_EMBEDDINGS_TENSOR);
    const want = [config.num_virtual_tokens, base.hiddenSize];
    if (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1]) {
      throw new AdapterError(
        "shape_mismatch",
        `tensor "${PROMPT_EMBEDDINGS_TENSOR}" has shape ${JSON.stringify(shape)} but num_virtual_tokens and the base model's hidden size need ${JSON.stringify(want)}`,
      );
    }
    return { config, store, numVirtualTokens: config.num_virtual_tokens };
  } catch (e) {
    store.close();
    throw e;
  }
}

/** The embeddings, each value checked finite and within MAX_ADAPTER_WEIGHT. */
export function toPromptWeights(id: string, adapter: ValidatedPromptTuning): PromptWeights {
  const embeddings = adapter.store.getF32(PROMPT_EMBEDDINGS_TENSOR);
  for (let i = 0; i < embeddings.length; i++) {
    if (!(Math.abs(embeddings[i]!) <= MAX_ADAPTER_WEIGHT)) {
      throw new AdapterError(
        "non_finite_weights",
        `tensor "${PROMPT_EMBEDDINGS_TENSOR}" holds ${embeddings[i]} at index ${i}; embeddings must be finite and at most ${MAX_ADAPTER_WEIGHT} in magnitude`,
      );
    }
  }
  return { kind: "prompt_tuning", id, numVirtualTokens: adapter.numVirtualTokens, embeddings, bytes: embeddings.byteLength };
}
