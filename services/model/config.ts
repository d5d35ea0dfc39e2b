/**
 * Decoder configuration: the Hugging Face `config.json` of a Llama-family model (llama, mistral,
 * qwen2), validated and normalised into the few numbers the graph compiler needs.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

export type DecoderArchitecture = "llama" | "mistral" | "qwen2";

export interface Llama3RopeScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface DecoderConfig {
  architecture: DecoderArchitecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: Llama3RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  bosTokenId?: number;
  eosTokenIds: number[];
}

const ARCHITECTURE_CLASSES: Record<string, DecoderArchitecture> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
};

const positiveInt = z.number().int().positive();
const tokenIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]);

const ropeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive(),
    low_freq_factor: z.number().positive(),
    high_freq_factor: z.number().positive(),
    original_max_position_embeddings: positiveInt,
  })
  .loose();

const configSchema = z
  .object({
    model_type: z.string().optional(),
    architectures: z.array(z.string()).optional(),
    hidden_size: positiveInt,
    intermediate_size: positiveInt,
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt.nullish(),
    head_dim: positiveInt.nullish(),
    vocab_size: positiveInt,
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().default(10000),
    rope_scaling: z.unknown().nullish(),
    max_position_embeddings: positiveInt.default(2048),
    tie_word_embeddings: z.boolean().default(false),
    attention_bias: z.boolean().default(false),
    hidden_act: z.string().default("silu"),
    mlp_bias: z.boolean().default(false),
    sliding_window: positiveInt.nullish(),
    use_sliding_window: z.boolean().optional(),
    bos_token_id: z.number().int().nonnegative().nullish(),
    eos_token_id: tokenIds.nullish(),
  })
  .loose();

function detectArchitecture(modelType: string | undefined, classes: string[] | undefined): DecoderArchitecture {
  if (modelType !== undefined) {
    if (modelType === "llama" || modelType === "mistral" || modelType === "qwen2") return modelType;
    throw new Error(`unsupported model_type "${modelType}" (supported: llama, mistral, qwen2)`);
  }
  for (const name of classes ?? []) {
    const architecture = ARCHITECTURE_CLASSES[name];
    if (architecture) return architecture;
  }
  const named = classes?.length ? `architectures ${JSON.stringify(classes)}` : "no model_type or architectures";
  throw new Error(`unsupported model: ${named} (supported: llama, mistral, qwen2)`);
}

function parseRopeScaling(value: unknown): Llama3RopeScaling | undefined {
  if (value === undefined || value === null) return undefined;
  const kind = typeof value === "object" ? ((value as { rope_type?: unknown; type?: unknown }).rope_type ?? (value as { type?: unknown }).type) : undefined;
  if (kind === "default") return undefined;
  if (kind !== "llama3") {
    throw new Error(`unsupported rope_scaling type ${JSON.stringify(kind)} (only "llama3" is supported)`);
  }
  const parsed = ropeScalingSchema.safeParse(value);
  if (!parsed.success) throw new Error(`invalid llama3 rope_scaling: ${z.prettifyError(parsed.error)}`);
  const r = parsed.data;
  return {
    type: "llama3",
    factor: r.factor,
    lowFreqFactor: r.low_freq_factor,
    highFreqFactor: r.high_freq_factor,
    originalMaxPositionEmbeddings: r.original_max_position_embeddings,
  };
}

/**
 * The usable context. Sliding-window attention (Mistral v0.1's 4096, Qwen2 when enabled) equals
 * full attention as long as the context fits in the window, so the context is capped at the window
 * instead of rejecting the model.
 */
function contextLength(
  architecture: DecoderArchitecture,
  c: { max_position_embeddings: number; sliding_window?: number | null; use_sliding_window?: boolean },
): number {
  const windowed = architecture === "qwen2" ? c.use_sliding_window === true : c.sliding_window != null;
  return windowed && c.sliding_window ? Math.min(c.max_position_embeddings, c.sliding_window) : c.max_position_embeddings;
}

export function toIdList(value: number | number[] | null | undefined): number[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/** Validates a Hugging Face config.json object. Throws an Error naming the problem. */
export function parseDecoderConfig(json: unknown): DecoderConfig {
  if (typeof json !== "object" || json === null) throw new Error("config.json: expected a JSON object");
  const header = json as { model_type?: unknown; architectures?: unknown };
  const architecture = detectArchitecture(
    typeof header.model_type === "string" ? header.model_type : undefined,
    Array.isArray(header.architectures) ? header.architectures.filter((a): a is string => typeof a === "string") : undefined,
  );
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw new Error(`config.json (${architecture}): ${z.prettifyError(parsed.error)}`);
  const c = parsed.data;
  if (c.hidden_act !== "silu" && c.hidden_act !== "swish") throw new Error(`unsupported hidden_act "${c.hidden_act}" (only silu)`);
  if (c.mlp_bias) throw new Error("mlp_bias is not supported");
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    throw new Error(`num_attention_heads (${c.num_attention_heads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  }
  if (c.head_dim == null && c.hidden_size % c.num_attention_heads !== 0) {
    throw new Error(`hidden_size (${c.hidden_size}) is not divisible by num_attention_heads (${c.num_attention_heads}) and no head_dim is given`);
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (headDim % 2 !== 0) throw new Error(`head_dim must be even for rotary embeddings, got ${headDim}`);
  return {
    architecture,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling: parseRopeScaling(c.rope_scaling),
    maxPositionEmbeddings: contextLength(architecture, c),
    tieWordEmbeddings: c.tie_word_embeddings,
    // Qwen2 always has q/k/v biases; its config carries no attention_bias flag.
    attentionBias: architecture === "qwen2" ? true : c.attention_bias,
    bosTokenId: c.bos_token_id ?? undefined,
    eosTokenIds: toIdList(c.eos_token_id),
  };
}

async function readJsonIfPresent(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: invalid JSON (${(error as Error).message})`);
  }
}

/** Reads `config.json` (required) and `generation_config.json` (optional, for the eos ids). */
export async function loadDecoderConfig(dir: string): Promise<DecoderConfig> {
  const configPath = join(dir, "config.json");
  const json = await readJsonIfPresent(configPath);
  if (json === undefined) throw new Error(`no config.json in model folder ${dir}`);
  let config: DecoderConfig;
  try {
    config = parseDecoderConfig(json);
  } catch (error) {
    throw new Error(`${configPath}: ${(error as Error).message}`);
  }
  const generation = (await readJsonIfPresent(join(dir, "generation_config.json"))) as
    | { eos_token_id?: number | number[]; bos_token_id?: number }
    | undefined;
  const eos = new Set([...config.eosTokenIds, ...toIdList(generation?.eos_token_id)]);
  return {
    ...config,
    bosTokenId: config.bosTokenId ?? generation?.bos_token_id,
    eosTokenIds: [...eos],
  };
}
