import { z } from "zod";
import { HeaderLimitError, parseSafetensorsBytes, type HeaderLimits, type WeightStore } from "../model/safetensors.ts";
import type { AdapterFiles } from "./archive.ts";
import { AdapterError } from "./errors.ts";
import { blockOf, LORA_TARGETS, type LoraModelShape, type LoraModuleKey, loraModuleName, type LoraModuleWeights, type LoraTarget, type LoraWeights, projectionShape } from "../model/lora-layout.ts";

/**
 * The base-model numbers an adapter is checked against (a structural subset of DecoderConfig);
 * with the context length, prompt-tuning adapters' virtual tokens are checked against it too.
 */
export type BaseModelShape = LoraModelShape & { maxPositionEmbeddings?: number };

export interface PeftLimits {
  /** Largest LoRA rank this node accepts (the compiled graph's slot rank). */
  maxRank: number;
}

const stringOrList = z.union([z.string(), z.array(z.string())]);

const peftConfigSchema = z
  .object({
    peft_type: z.string(),
    r: z.number().int().positive().default(8),
    lora_alpha: z.number().positive().default(8),
    use_rslora: z.boolean().default(false),
    target_modules: stringOrList.nullish(),
    exclude_modules: stringOrList.nullish(),
    layers_to_transform: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish(),
    rank_pattern: z.record(z.string(), z.number().int().positive()).nullish(),
    alpha_pattern: z.record(z.string(), z.number().positive()).nullish(),
    fan_in_fan_out: z.boolean().default(false),
    modules_to_save: z.array(z.string()).nullish(),
    use_dora: z.boolean().default(false),
    bias: z.string().default("none"),
    lora_bias: z.boolean().default(false),
    base_model_name_or_path: z.string().nullish(),
    layer_replication: z.array(z.unknown()).nullish(),
    target_parameters: z.array(z.string()).nullish(),
  })
  .loose();

export type PeftConfig = z.infer<typeof peftConfigSchema>;

/** One adapted linear layer: where it sits, its dims and its scale. */
export interface PeftModule {
  key: LoraModuleKey;
  /** The tensor-name stem in adapter_model.safetensors, e.g. base_model.model.model.layers.0.self_attn.q_proj */
  tensorStem: string;
  target: LoraTarget;
  rank: number;
  alpha: number;
  scale: number;
  inFeatures: number;
  outFeatures: number;
}

/** An adapter that passed every check, with its weights still in safetensors form. */
export interface ValidatedAdapter {
  config: PeftConfig;
  modules: PeftModule[];
  store: WeightStore;
  /** For the catalog row. */
  summary: { rank: number; alpha: number; targetModules: LoraTarget[]; baseModel: string | null };
}

const invalid = (message: string) => new AdapterError("invalid_config", `adapter_config.json: ${message}`);

/** adapter_config.json as a JSON object (any PEFT type). */
export function readConfigJson(bytes: Uint8Array): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw invalid(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalid("expected a JSON object");
  return json as Record<string, unknown>;
}

export function parsePeftConfig(bytes: Uint8Array): PeftConfig {
  const parsed = peftConfigSchema.safeParse(readConfigJson(bytes));
  if (!parsed.success) throw invalid(z.prettifyError(parsed.error));
  rejectUnsupportedOptions(parsed.data);
  return parsed.data;
}

function rejectUnsupportedOptions(c: PeftConfig): void {
  const refuse = (message: string) => new AdapterError("unsupported_option", `adapter_config.json: ${message}`);
  if (c.peft_type !== "LORA") throw refuse(`peft_type "${c.peft_type}" is not supported; only LORA and PROMPT_TUNING adapters can be served`);
  if (c.fan_in_fan_out) throw refuse("fan_in_fan_out: true (Conv1D-style weights) is not supported; Llama-family linear layers store [out, in]");
  if (c.modules_to_save?.length) {
    throw refuse(`modules_to_save ${JSON.stringify(c.modules_to_save)} is not supported: it replaces whole base-model modules, which cannot be hot-swapped`);
  }
  if (c.use_dora) throw refuse("use_dora: true (DoRA) is not supported: its magnitude vector needs the merged weight norm per request");
  if (c.bias !== "none") throw refuse(`bias "${c.bias}" is not supported: trained biases change the base model; only bias "none" can be hot-swapped`);
  if (c.lora_bias) throw refuse("lora_bias: true is not supported");
  if (c.layer_replication?.length) throw refuse("layer_replication is not supported: it changes the base model's layer stack");
  if (c.target_parameters?.length) throw refuse("target_parameters (LoRA on raw parameters) is not supported; only linear modules can be hot-swapped");
  if (c.target_modules == null) throw invalid("target_modules is missing");
}

// --- the base model's modules ---

/** Every linear layer of the base model by its PEFT module name, e.g. model.layers.0.self_attn.q_proj. */
function baseModuleNames(base: BaseModelShape): string[] {
  const names: string[] = [];
  for (let layer = 0; layer < base.numLayers; layer++) {
    for (const target of LORA_TARGETS) names.push(loraModuleName(layer, target));
  }
  return names;
}

const MODULE_NAME = /^model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)$/;

function parseModuleName(name: string, base: BaseModelShape): { layer: number; target: LoraTarget } | undefined {
  const m = MODULE_NAME.exec(name);
  if (!m) return undefined;
  const layer = Number(m[1]);
  const target = m[3] as LoraTarget;
  if (layer >= base.numLayers || !LORA_TARGETS.includes(target) || blockOf(target) !== m[2]) return undefined;
  return { layer, target };
}

// --- PEFT's matching rules ---

function compile(pattern: string, field: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw invalid(`${field} ${JSON.stringify(pattern)} is not a valid regular expression (${(e as Error).message})`);
  }
}

/** PEFT's check_target_module_exists: a string is a full-match regex, a list matches whole names or dotted suffixes. */
function selects(spec: string | string[], name: string, field: string): boolean {
  if (typeof spec === "string") {
    if (spec === "all-linear") return true; // every linear layer but the output head, which is never a candidate here
    return compile(spec, field).test(name);
  }
  return spec.some((t) => name === t || name.endsWith(`.${t}`));
}

/** PEFT's get_pattern_key: the first pattern key that equals the name or matches a dotted suffix of it. */
function patternValue<T>(patterns: Record<string, T> | null | undefined, name: string, field: string): T | undefined {
  if (!patterns) return undefined;
  if (name in patterns) return patterns[name];
  for (const [key, value] of Object.entries(patterns)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:.*\\.)?(?:${key})$`);
    } catch (e) {
      throw invalid(`${field} key ${JSON.stringify(key)} is not a valid regular expression (${(e as Error).message})`);
    }
    if (re.test(name)) return value;
  }
  return undefined;
}

function isSelected(config: PeftConfig, name: string, layer: number): boolean {
  if (!selects(config.target_modules!, name, "target_modules")) return false;
  if (config.exclude_modules != null && selects(config.exclude_modules, name, "exclude_modules")) return false;
  const layers = config.layers_to_transform;
  if (layers == null) return true;
  return Array.isArray(layers) ? layers.includes(layer) : layers === layer;
}

// --- validation ---

const TENSOR_NAME = /^base_model\.model\.(.+)\.lora_(A|B)\.weight$/;

/**
 * Checks a PEFT adapter against the base model and this node's limits, throwing an AdapterError
 * that names the exact problem. Its values are checked by converting it once (see toLoraWeights).
 */
export function validatePeftAdapter(files: AdapterFiles, base: BaseModelShape, limits: PeftLimits): ValidatedAdapter {
  const adapter = checkStructure(files, base, limits);
  toLoraWeights("validation", adapter); // converted once to check every value; the result is dropped
  return adapter;
}

/** Everything but the values: config, tensor names, shapes, ranks and header bounds. */
function checkStructure(files: AdapterFiles, base: BaseModelShape, limits: PeftLimits): ValidatedAdapter {
  const config = parsePeftConfig(files.config);
  checkTargetsExist(config, base);
  const store = openStore(files.model, base);
  const stems = groupTensors(store, base);
  const modules = [...stems].map(([name, { layer, target }]) => checkModule(config, store, base, limits, name, layer, target));
  checkNothingMissing(config, base, stems);
  const targets = LORA_TARGETS.filter((t) => modules.some((m) => m.target === t));
  return {
    config,
    modules,
    store,
    summary: {
      rank: Math.max(...modules.map((m) => m.rank)),
      alpha: config.lora_alpha,
      targetModules: targets,
      baseModel: config.base_model_name_or_path ?? null,
    },
  };
}

function checkTargetsExist(config: PeftConfig, base: BaseModelShape): void {
  const names = baseModuleNames(base);
  const spec = config.target_modules!;
  const entries: Array<[shown: string, pattern: string | string[]]> = typeof spec === "string" ? [[spec, spec]] : spec.map((t) => [t, [t]]);
  for (const [shown, pattern] of entries) {
    if (!names.some((n) => selects(pattern, n, "target_modules"))) {
      throw new AdapterError(
        "unknown_module",
        `target_modules entry ${JSON.stringify(shown)} matches no linear layer of the base model (${LORA_TARGETS.join(", ")} in layers 0..${base.numLayers - 1})`,
      );
    }
  }
}

/** Room for `__metadata__` and padding, on top of what the tensors' entries need. */
const HEADER_SLACK_BYTES = 64 * 1024;
/** Generous for one entry: PEFT's longest tensor name, dtype, a 2-d shape and two offsets take about 160. */
const HEADER_BYTES_PER_TENSOR = 512;

/** The most an adapter for `base` can need: lora_A and lora_B for every target of every layer. */
export function adapterHeaderLimits(base: BaseModelShape): HeaderLimits {
  const maxTensors = 2 * LORA_TARGETS.length * base.numLayers;
  return {
    maxTensors,
    maxHeaderBytes: HEADER_SLACK_BYTES + HEADER_BYTES_PER_TENSOR * maxTensors,
    reason: `an adapter for this ${base.numLayers}-layer base model has at most 2 x ${LORA_TARGETS.length} targets x ${base.numLayers} layers = ${maxTensors} tensors`,
  };
}

function openStore(bytes: Uint8Array, base: BaseModelShape): WeightStore {
  try {
    return parseSafetensorsBytes(bytes, "adapter_model.safetensors", adapterHeaderLimits(base));
  } catch (e) {
    if (e instanceof HeaderLimitError) throw new AdapterError("too_many_tensors", e.message);
    throw new AdapterError("corrupt_safetensors", (e as Error).message);
  }
}

/** Maps every tensor to its module; any tensor that is not lora_A/lora_B of a real module is refused. */
function groupTensors(store: WeightStore, base: BaseModelShape): Map<string, { layer: number; target: LoraTarget }> {
  const modules = new Map<string, { layer: number; target: LoraTarget; parts: Set<string> }>();
  const names = store.names();
  if (names.length === 0) throw new AdapterError("corrupt_safetensors", "adapter_model.safetensors holds no tensors");
  for (const tensor of names) {
    const m = TENSOR_NAME.exec(tensor);
    if (!m) {
      throw new AdapterError("unknown_module", `tensor "${tensor}" is not a LoRA weight (expected base_model.model.<module>.lora_A.weight or .lora_B.weight)`);
    }
    const [, name, part] = m as unknown as [string, string, string];
    const where = parseModuleName(name, base);
    if (!where) {
      throw new AdapterError(
        "unknown_module",
        `tensor "${tensor}" targets module "${name}", which the base model does not have (it has ${LORA_TARGETS.join(", ")} in layers 0..${base.numLayers - 1})`,
      );
    }
    const entry = modules.get(name) ?? { ...where, parts: new Set<string>() };
    entry.parts.add(part);
    modules.set(name, entry);
  }
  for (const [name, { parts }] of modules) {
    if (parts.size !== 2) {
      const has = [...parts][0];
      throw new AdapterError("shape_mismatch", `module "${name}" has lora_${has} but no lora_${has === "A" ? "B" : "A"}`);
    }
  }
  return modules;
}

function checkModule(
  config: PeftConfig,
  store: WeightStore,
  base: BaseModelShape,
  limits: PeftLimits,
  name: string,
  layer: number,
  target: LoraTarget,
): PeftModule {
  if (!isSelected(config, name, layer)) {
    throw new AdapterError("unknown_module", `adapter_model.safetensors has weights for "${name}", which target_modules does not select`);
  }
  const rank = patternValue(config.rank_pattern, name, "rank_pattern") ?? config.r;
  const alpha = patternValue(config.alpha_pattern, name, "alpha_pattern") ?? config.lora_alpha;
  if (rank > limits.maxRank) {
    throw new AdapterError("rank_too_high", `module "${name}" has rank ${rank}, above this node's maximum rank ${limits.maxRank}`);
  }
  const { in: inFeatures, out: outFeatures } = projectionShape(base, target);
  const tensorStem = `base_model.model.${name}`;
  expectShape(store, `${tensorStem}.lora_A.weight`, [rank, inFeatures], `rank ${rank} x in_features ${inFeatures}`);
  expectShape(store, `${tensorStem}.lora_B.weight`, [outFeatures, rank], `out_features ${outFeatures} x rank ${rank}`);
  const scale = config.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank;
  return { key: `layers.${layer}.${target}`, tensorStem, target, rank, alpha, scale, inFeatures, outFeatures };
}

function expectShape(store: WeightStore, tensor: string, expected: number[], meaning: string): void {
  const { shape } = store.info(tensor);
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new AdapterError(
      "shape_mismatch",
      `tensor "${tensor}" has shape ${JSON.stringify(shape)} but the base model and config need ${JSON.stringify(expected)} (${meaning})`,
    );
  }
}

/**
 * Largest |value| accepted in A and in scale·B. Trained LoRA weights sit far below 1; anything this
 * large is a broken or hostile upload whose activations would overflow (and a non-finite one would
 * turn every later logit of its sequences into NaN).
 */
export const MAX_ADAPTER_WEIGHT = 1e4;

function insaneValue(tensor: string, value: number, index: number, scale: number): AdapterError {
  const what = Number.isFinite(value) && scale !== 1 ? `${value} (x scale ${scale})` : String(value);
  return new AdapterError(
    "non_finite_weights",
    `tensor "${tensor}" holds ${what} at index ${index}; adapter weights (times the LoRA scale) must be finite and at most ${MAX_ADAPTER_WEIGHT} in magnitude`,
  );
}

function checkNothingMissing(config: PeftConfig, base: BaseModelShape, present: Map<string, unknown>): void {
  for (const name of baseModuleNames(base)) {
    const layer = Number(MODULE_NAME.exec(name)![1]);
    if (isSelected(config, name, layer) && !present.has(name)) {
      throw new AdapterError("shape_mismatch", `target_modules selects "${name}" but adapter_model.safetensors has no lora_A/lora_B weights for it`);
    }
  }
}

// --- conversion ---

/**
 * Turns validated PEFT weights into the graph's layout: a = A^T [in, r], b = (s·B)^T [r, out],
 * refusing (non_finite_weights) any value that is not finite or is past MAX_ADAPTER_WEIGHT.
 */
export function toLoraWeights(id: string, adapter: ValidatedAdapter): LoraWeights {
  const modules = new Map<LoraModuleKey, LoraModuleWeights>();
  let bytes = 0;
  const converted = (tensor: string, rows: number, cols: number, scale: number) => transpose(tensor, adapter.store.getF32(tensor), rows, cols, scale);
  for (const m of adapter.modules) {
    const a = converted(`${m.tensorStem}.lora_A.weight`, m.rank, m.inFeatures, 1);
    const b = converted(`${m.tensorStem}.lora_B.weight`, m.outFeatures, m.rank, m.scale);
    modules.set(m.key, { rank: m.rank, a, b });
    bytes += a.byteLength + b.byteLength;
  }
  return { id, maxRank: adapter.summary.rank, modules, bytes };
}

/** `tensor` [rows, cols] row-major -> [cols, rows] row-major, times `scale`, each value checked. */
function transpose(tensor: string, source: Float32Array, rows: number, cols: number, scale: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const rowStart = r * cols;
    for (let c = 0; c < cols; c++) {
      const v = source[rowStart + c]! * scale;
      if (!(Math.abs(v) <= MAX_ADAPTER_WEIGHT)) throw insaneValue(tensor, source[rowStart + c]!, rowStart + c, scale); // NaN fails too
      out[c * rows + r] = v;
    }
  }
  return out;
}

/** Validate and convert in one step (the values are read once, by the conversion). */
export function loadPeftAdapter(id: string, files: AdapterFiles, base: BaseModelShape, limits: PeftLimits): LoraWeights {
  const adapter = checkStructure(files, base, limits);
  try {
    return toLoraWeights(id, adapter);
  } finally {
    adapter.store.close();
  }
}
