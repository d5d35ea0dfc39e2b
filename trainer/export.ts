/**
 * PEFT export: a trained adapter as the folder `save_pretrained` writes, which the upload path
 * (services/adapters/upload.ts, peft.ts) and PEFT itself load.
 *   adapter_config.json         peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, use_rslora,
 *                               target_modules (the Hugging Face module names), bias "none",
 *                               fan_in_fan_out false, base_model_name_or_path, ...
 *   adapter_model.safetensors   F32, metadata {format: "pt"}, per module
 *     base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_A.weight  [r, in]
 *     base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_B.weight  [out, r]
 * The parameters are already in PEFT's layout (trainer/lora-params.ts), so the tensors are written
 * as they are; the scale is not folded in (PEFT applies alpha/r, or alpha/√r, when it loads).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AdapterFiles } from "../services/adapters/archive.ts";
import { LORA_TARGETS, loraModuleName } from "../services/model/lora-layout.ts";
import { writeSafetensors, type TensorToWrite } from "../services/model/safetensors.ts";
import type { LoraParams } from "./lora-params.ts";

export interface PeftExportOptions {
  /** base_model_name_or_path: the model id the adapter was trained on. */
  baseModel: string;
  /** lora_dropout used in training (recorded only); default 0. */
  loraDropout?: number;
}

export const PEFT_CONFIG_FILE = "adapter_config.json";
export const PEFT_MODEL_FILE = "adapter_model.safetensors";

/** The adapter_config.json object, with the fields PEFT's LoraConfig writes. */
export function peftConfig(params: LoraParams, options: PeftExportOptions): Record<string, unknown> {
  const { rank, alpha, useRslora = false } = params.spec;
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: options.baseModel,
    r: rank,
    lora_alpha: alpha,
    use_rslora: useRslora,
    target_modules: LORA_TARGETS.filter((t) => params.spec.targets.includes(t)),
    lora_dropout: options.loraDropout ?? 0,
    fan_in_fan_out: false,
    bias: "none",
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_dora: false,
    revision: null,
  };
}

/** PEFT's tensors: lora_A [r, in] and lora_B [out, r] of every module, F32. */
export function peftTensors(params: LoraParams): Record<string, TensorToWrite> {
  const r = params.spec.rank;
  const tensors: Record<string, TensorToWrite> = {};
  for (const m of params.modules) {
    const stem = `base_model.model.${loraModuleName(m.layer, m.target)}`;
    tensors[`${stem}.lora_A.weight`] = { dtype: "F32", shape: [r, m.inFeatures], data: m.a };
    tensors[`${stem}.lora_B.weight`] = { dtype: "F32", shape: [m.outFeatures, r], data: m.b };
  }
  return tensors;
}

/** The two files in memory, the shape the upload path takes. */
export function exportPeftAdapter(params: LoraParams, options: PeftExportOptions): AdapterFiles {
  return {
    config: new TextEncoder().encode(`${JSON.stringify(peftConfig(params, options), null, 2)}\n`),
    model: writeSafetensors(peftTensors(params), { format: "pt" }),
  };
}

/** Writes the PEFT folder (created if missing); returns the two files' paths. */
export async function writePeftFolder(dir: string, files: AdapterFiles): Promise<{ config: string; model: string }> {
  await mkdir(dir, { recursive: true });
  const paths = { config: join(dir, PEFT_CONFIG_FILE), model: join(dir, PEFT_MODEL_FILE) };
  await writeFile(paths.config, files.config);
  await writeFile(paths.model, files.model);
  return paths;
}
