/**
 * Prompt tuning (PEFT's PROMPT_TUNING) as the serving graph sees it: an adapter is N trained
 * "virtual token" embeddings that are put before a sequence's first real token. PEFT's causal-LM
 * forward concatenates them before the input embeddings, extends the attention mask with ones and
 * drops any position ids, so the model numbers the positions 0..N+L-1 from the first virtual token:
 * here a prompt-tuned sequence is simply N + L tokens long, the first N being virtual.
 *
 * In a step's `input_ids`, an id at or past the vocabulary size is a virtual token: id vocab + k
 * reads row k of the step's `virtual_embeddings` input [E, hidden], the embeddings of the step's
 * prompt-tuning adapters stacked (services/inference/virtual-tokens.ts builds both).
 */
import type { LoraWeights } from "./lora-layout.ts";

/** The graph input holding a step's virtual-token embeddings, float [E, hidden]. */
export const VIRTUAL_EMBEDDINGS_INPUT = "virtual_embeddings";

/** A loaded prompt-tuning adapter. */
export interface PromptWeights {
  kind: "prompt_tuning";
  id: string;
  numVirtualTokens: number;
  /** [numVirtualTokens, hidden] row-major: PEFT's `prompt_embeddings`. */
  embeddings: Float32Array;
  /** Bytes held, for the adapter cache's budget. */
  bytes: number;
}

/** Any adapter the engine serves: LoRA (low-rank deltas on the projections) or prompt tuning. */
export type AdapterWeights = LoraWeights | PromptWeights;

export function isPromptTuning(weights: AdapterWeights | undefined): weights is PromptWeights {
  return weights?.kind === "prompt_tuning";
}

/** The LoRA weights of an adapter, undefined for none or a prompt-tuning one. */
export function loraOf(weights: AdapterWeights | undefined): LoraWeights | undefined {
  return weights && !isPromptTuning(weights) ? weights : undefined;
}

/** The weights as LoRA, for callers that only handle LoRA (benchmarks, LoRA-only tests). */
export function requireLora(weights: AdapterWeights): LoraWeights {
  if (isPromptTuning(weights)) throw new Error(`adapter ${weights.id} is a prompt-tuning adapter, not LoRA`);
  return weights;
}
