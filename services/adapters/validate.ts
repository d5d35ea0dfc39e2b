/**
 * One entry for every adapter kind: reads adapter_config.json's peft_type and hands the files to
 * the LoRA checks (peft.ts) or the prompt-tuning ones (prompt-tuning.ts). Validation reads every
 * value once (as loading does) and keeps nothing; loading returns the engine's weights.
 */
import type { AdapterWeights } from "../model/prompt-tuning.ts";
import type { AdapterFiles } from "./archive.ts";
import { loadPeftAdapter, readConfigJson, validatePeftAdapter, type BaseModelShape, type PeftLimits } from "./peft.ts";
import { checkPromptTuning, toPromptWeights } from "./prompt-tuning.ts";

/** The adapter kinds a catalog row can hold. */
import type { AdapterKind } from "../../ports/adapters.ts";
export type { AdapterKind };

/** What a catalog row records of a validated adapter (rank, alpha and targets are 0 / [] for prompt tuning). */
export interface AdapterSummary {
  kind: AdapterKind;
  rank: number;
  alpha: number;
  targetModules: string[];
  /** Prompt tuning only, else null. */
  numVirtualTokens: number | null;
}

const isPromptTuningConfig = (json: Record<string, unknown>) => json.peft_type === "PROMPT_TUNING";

/** Checks an adapter of either kind against the base; throws an AdapterError naming the reason. */
export function validateAdapter(files: AdapterFiles, base: BaseModelShape, limits: PeftLimits): AdapterSummary {
  const json = readConfigJson(files.config);
  if (isPromptTuningConfig(json)) {
    const adapter = checkPromptTuning(json, files, base);
    try {
      toPromptWeights("validation", adapter);
    } finally {
      adapter.store.close();
    }
    return { kind: "prompt_tuning", rank: 0, alpha: 0, targetModules: [], numVirtualTokens: adapter.numVirtualTokens };
  }
  const validated = validatePeftAdapter(files, base, limits);
  validated.store.close();
  const { rank, alpha, targetModules } = validated.summary;
  return { kind: "lora", rank, alpha, targetModules, numVirtualTokens: null };
}

/** Validates and converts to the engine's weights (LoRA in the graph's layout, or the virtual-token embeddings). */
export function loadAdapter(id: string, files: AdapterFiles, base: BaseModelShape, limits: PeftLimits): AdapterWeights {
  const json = readConfigJson(files.config);
  if (!isPromptTuningConfig(json)) return loadPeftAdapter(id, files, base, limits);
  const adapter = checkPromptTuning(json, files, base);
  try {
    return toPromptWeights(id, adapter);
  } finally {
    adapter.store.close();
  }
}
