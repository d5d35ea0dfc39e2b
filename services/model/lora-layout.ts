/**
 * Where LoRA adapters attach in a Llama-family decoder: the adaptable linear layers (targets),
 * the block each sits in, the in/out features of each, and the names of the decoder graph's LoRA
 * inputs. The one definition shared by the graph builder, the adapter loaders (PEFT), the slot
 * buffers and the feeds, so they cannot disagree about a layout.
 *
 * Invariants: targets are listed in the order the graph applies them within a layer (q, k, v, o,
 * then gate, up, down); a target's weight is `[out, in]` in Hugging Face layout, x·Wᵀ maps `in`
 * features to `out`.
 */

/** The linear layers a LoRA adapter may target, by their Hugging Face module names. */
export const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/** The sublayer of a decoder layer that holds a target. */
export type LoraBlock = "self_attn" | "mlp";

/**
 * The model numbers the layout depends on; a structural subset of `DecoderConfig` (and the shape
 * an adapter is checked against before the model is loaded).
 */
export interface LoraModelShape {
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

export function blockOf(target: LoraTarget): LoraBlock {
  return target === "gate_proj" || target === "up_proj" || target === "down_proj" ? "mlp" : "self_attn";
}

/** The Hugging Face module name, e.g. "model.layers.3.self_attn.q_proj" (its weight is `${name}.weight`). */
export function loraModuleName(layer: number, target: LoraTarget): string {
  return `model.layers.${layer}.${blockOf(target)}.${target}`;
}

/** In/out features of an adaptable projection. */
export function projectionShape(shape: Omit<LoraModelShape, "numLayers">, target: LoraTarget): { in: number; out: number } {
  const { hiddenSize: h, intermediateSize: m, numHeads, numKvHeads, headDim } = shape;
  switch (target) {
    case "q_proj":
      return { in: h, out: numHeads * headDim };
    case "k_proj":
    case "v_proj":
      return { in: h, out: numKvHeads * headDim };
    case "o_proj":
      return { in: numHeads * headDim, out: h };
    case "gate_proj":
    case "up_proj":
      return { in: h, out: m };
    case "down_proj":
      return { in: m, out: h };
  }
}

/** The decoder graph input holding a layer's A (`a`) or B (`b`) matrices for one target. */
export function loraInputName(layer: number, target: LoraTarget, part: "a" | "b"): string {
  return `lora.${layer}.${target}.${part}`;
}

/**
 * The training graph's dropout mask of a layer's target when LoRA dropout is on: float [B, T, in],
 * each element 0 (dropped) or 1/(1-p) (kept, inverted scaling), multiplied into the LoRA branch's input.
 */
export function loraDropoutName(layer: number, target: LoraTarget): string {
  return `lora.${layer}.${target}.dropout`;
}

/** `layers.{i}.{target}`, e.g. "layers.3.q_proj". */
export type LoraModuleKey = `layers.${number}.${LoraTarget}`;

export interface LoraModuleWeights {
  rank: number;
  /** A^T laid out [in, rank], row-major, so that x·A is a plain matmul. */
  a: Float32Array;
  /** (scale · B)^T laid out [rank, out], row-major: the adapter's scale is folded in at load time. */
  b: Float32Array;
}

/** An adapter loaded into memory, ready to be fed to the decoder graph. */
export interface LoraWeights {
  /** Tells it from a prompt-tuning adapter (services/model/prompt-tuning.ts); absent means LoRA. */
  kind?: "lora";
  id: string;
  /** Largest rank over its modules (ranks may differ per module with rank_pattern). */
  maxRank: number;
  modules: Map<LoraModuleKey, LoraModuleWeights>;
  /** Bytes held by the tensors, for the cache's memory budget. */
  bytes: number;
}
