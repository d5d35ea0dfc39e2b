/**
 * The trainable tensors of one LoRA adapter, and the two layouts they travel in.
 *
 * The trainer holds PEFT's layout, the one torch trains and PEFT saves:
 *   A [r, in]  (lora_A.weight),  B [out, r]  (lora_B.weight),  ΔW = s·B·A,  s = alpha/r (rsLoRA: alpha/√r).
 * The optimizer therefore steps exactly the tensors PEFT steps, so hyperparameters (lr, weight decay,
 * eps) mean what they mean in a PEFT run, and export is a plain write.
 *
 * The training graph (services/model/llama/training-graph.ts) wants lora-layout.ts's layout instead:
 *   a = Aᵀ [in, r],  b = (s·B)ᵀ [r, out],  so that x·a·b = s·x·Aᵀ·Bᵀ = x·ΔWᵀ.
 * Conversions go both ways (`toGraphWeights`, `fromGraphWeights`), and gradients that come back in the
 * graph's layout are pulled back by the chain rule (`gradientsFromGraph`):
 *   ∂L/∂A[j,i] = ∂L/∂a[i,j],   ∂L/∂B[o,j] = s·∂L/∂b[j,o].
 *
 * Initialisation is PEFT's default (`init_lora_weights=True`, LoraLayer.reset_lora_parameters):
 * `kaiming_uniform_(A, a=√5)` and B = 0. With fan_in = in (A is [r, in]), gain = √(2/(1+a²)) = √(1/3)
 * and bound = gain·√(3/fan_in) = 1/√in, so A ~ U(-1/√in, 1/√in): the adapter starts as the identity
 * (ΔW = 0) while ∂L/∂B ≠ 0. Deterministic for a seed (mulberry32, services/inference/sampler.ts).
 *
 * Invariants: one rank and alpha for every module (no rank_pattern); modules are listed layer by layer,
 * targets in LORA_TARGETS order; `parameters()` and every gradient list use that order, A before B.
 */
import { createRandom } from "../services/inference/sampler.ts";
import {
  LORA_TARGETS,
  loraInputName,
  type LoraModelShape,
  type LoraModuleKey,
  type LoraModuleWeights,
  type LoraTarget,
  type LoraWeights,
  projectionShape,
} from "../services/model/lora-layout.ts";

export interface LoraSpec {
  /** The projections trained in every layer. */
  targets: readonly LoraTarget[];
  rank: number;
  alpha: number;
  /** rsLoRA: s = alpha/√r instead of alpha/r. */
  useRslora?: boolean;
}

/** One adapted projection in PEFT's layout. */
export interface LoraParamModule {
  key: LoraModuleKey;
  layer: number;
  target: LoraTarget;
  inFeatures: number;
  outFeatures: number;
  /** lora_A.weight, [rank, in] row-major. */
  a: Float32Array;
  /** lora_B.weight, [out, rank] row-major. */
  b: Float32Array;
}

export interface LoraParams {
  spec: LoraSpec;
  /** s, folded into the graph's b. */
  scale: number;
  modules: LoraParamModule[];
}

/** A plain tensor for a graph feed: row-major data and its dims. */
export interface FeedTensor {
  dims: number[];
  data: Float32Array;
}

/** PEFT's scaling: alpha/r, or alpha/√r with rsLoRA. */
export function loraScale(spec: LoraSpec): number {
  return spec.useRslora ? spec.alpha / Math.sqrt(spec.rank) : spec.alpha / spec.rank;
}

function checkSpec(shape: LoraModelShape, spec: LoraSpec): void {
  if (!Number.isInteger(spec.rank) || spec.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${spec.rank}`);
  if (!(spec.alpha > 0)) throw new Error(`LoRA alpha must be positive, got ${spec.alpha}`);
  if (spec.targets.length === 0) throw new Error("LoRA targets: at least one projection");
  for (const t of spec.targets) if (!LORA_TARGETS.includes(t)) throw new Error(`unknown LoRA target "${t}"`);
  if (new Set(spec.targets).size !== spec.targets.length) throw new Error(`LoRA targets repeat: ${spec.targets.join(", ")}`);
  if (!(shape.numLayers >= 1)) throw new Error("the model has no layers");
}

/** The modules of `spec` on a model, layer by layer, targets in LORA_TARGETS order, filled by `fill`. */
function buildModules(shape: LoraModelShape, spec: LoraSpec, fill: (m: Omit<LoraParamModule, "a" | "b">) => { a: Float32Array; b: Float32Array }): LoraParamModule[] {
  checkSpec(shape, spec);
  const targets = LORA_TARGETS.filter((t) => spec.targets.includes(t));
  const modules: LoraParamModule[] = [];
  for (let layer = 0; layer < shape.numLayers; layer++) {
    for (const target of targets) {
      const { in: inFeatures, out: outFeatures } = projectionShape(shape, target);
      const where = { key: `layers.${layer}.${target}` as LoraModuleKey, layer, target, inFeatures, outFeatures };
      modules.push({ ...where, ...fill(where) });
    }
  }
  return modules;
}

/** A fresh adapter, PEFT's default init: A ~ U(-1/√in, 1/√in), B = 0. */
export function initLoraParams(shape: LoraModelShape, spec: LoraSpec, seed: number): LoraParams {
  const uniform = createRandom(seed);
  const modules = buildModules(shape, spec, ({ inFeatures, outFeatures }) => {
    const bound = 1 / Math.sqrt(inFeatures);
    const a = new Float32Array(spec.rank * inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (uniform() * 2 - 1) * bound;
    return { a, b: new Float32Array(outFeatures * spec.rank) };
  });
  return { spec: { ...spec, targets: [...spec.targets] }, scale: loraScale(spec), modules };
}

/** Parameters of `spec` whose A [r, in] and B [out, r] (PEFT layout) `fill` gives per module (an adapter read back). */
export function loraParamsOf(shape: LoraModelShape, spec: LoraSpec, fill: (m: Omit<LoraParamModule, "a" | "b">) => { a: Float32Array; b: Float32Array }): LoraParams {
  const modules = buildModules(shape, spec, (m) => {
    const { a, b } = fill(m);
    if (a.length !== spec.rank * m.inFeatures || b.length !== m.outFeatures * spec.rank) throw new Error(`${m.key}: expected A [${spec.rank}, ${m.inFeatures}] and B [${m.outFeatures}, ${spec.rank}]`);
    return { a, b };
  });
  return { spec: { ...spec, targets: [...spec.targets] }, scale: loraScale(spec), modules };
}

/** The trainable tensors in optimizer order: A, B of each module. Views, not copies. */
export function parameters(params: LoraParams): Float32Array[] {
  return params.modules.flatMap((m) => [m.a, m.b]);
}

/** [rows, cols] row-major -> [cols, rows] row-major, times `scale` (computed in float64, stored float32). */
export function transposed(source: Float32Array, rows: number, cols: number, scale = 1): Float32Array {
  if (source.length !== rows * cols) throw new Error(`expected ${rows}x${cols} = ${rows * cols} values, got ${source.length}`);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = source[r * cols + c]! * scale;
  }
  return out;
}

/** PEFT layout -> the graph's LoraWeights: a = Aᵀ, b = (s·B)ᵀ (what loadPeftAdapter yields for the export). */
export function toGraphWeights(params: LoraParams, id: string): LoraWeights {
  const r = params.spec.rank;
  const modules = new Map<LoraModuleKey, LoraModuleWeights>();
  let bytes = 0;
  for (const m of params.modules) {
    const a = transposed(m.a, r, m.inFeatures);
    const b = transposed(m.b, m.outFeatures, r, params.scale);
    modules.set(m.key, { rank: r, a, b });
    bytes += a.byteLength + b.byteLength;
  }
  return { id, maxRank: r, modules, bytes };
}

/**
 * The graph's LoraWeights -> PEFT layout: A = aᵀ, B = bᵀ/s. Every module of `spec` must be present at
 * rank `spec.rank`, and nothing else (exact inverse of toGraphWeights up to the float32 rounding of s·B).
 */
export function fromGraphWeights(weights: LoraWeights, shape: LoraModelShape, spec: LoraSpec): LoraParams {
  const scale = loraScale(spec);
  const modules = buildModules(shape, spec, ({ key, inFeatures, outFeatures }) => {
    const w = weights.modules.get(key);
    if (!w) throw new Error(`adapter ${weights.id} has no weights for ${key}`);
    if (w.rank !== spec.rank) throw new Error(`adapter ${weights.id}: ${key} has rank ${w.rank}, expected ${spec.rank}`);
    return { a: transposed(w.a, inFeatures, spec.rank), b: transposed(w.b, spec.rank, outFeatures, 1 / scale) };
  });
  if (weights.modules.size !== modules.length) throw new Error(`adapter ${weights.id} has ${weights.modules.size} modules, the spec trains ${modules.length}`);
  return { spec: { ...spec, targets: [...spec.targets] }, scale, modules };
}

/**
 * Every LoRA input of the training graph, by graph input name: the trained modules' a = Aᵀ [in, r] and
 * b = (s·B)ᵀ [r, out], zeros of the same rank for each target the adapter leaves out.
 */
export function trainingFeeds(params: LoraParams, shape: LoraModelShape): Record<string, FeedTensor> {
  const r = params.spec.rank;
  const weights = toGraphWeights(params, "training");
  const feeds: Record<string, FeedTensor> = {};
  for (let layer = 0; layer < shape.numLayers; layer++) {
    for (const target of LORA_TARGETS) {
      const { in: inFeatures, out: outFeatures } = projectionShape(shape, target);
      const w = weights.modules.get(`layers.${layer}.${target}`);
      feeds[loraInputName(layer, target, "a")] = { dims: [inFeatures, r], data: w?.a ?? new Float32Array(inFeatures * r) };
      feeds[loraInputName(layer, target, "b")] = { dims: [r, outFeatures], data: w?.b ?? new Float32Array(r * outFeatures) };
    }
  }
  return feeds;
}

/**
 * The chain rule back to PEFT's layout. `graphGradient(name)` gives ∂L/∂(graph input) in the graph's
 * layout ([in, r] for a, [r, out] for b); the result is in `parameters()` order:
 *   ∂L/∂A = (∂L/∂a)ᵀ  [r, in],   ∂L/∂B = s·(∂L/∂b)ᵀ  [out, r].
 * Inputs of untrained targets are never asked for.
 */
export function gradientsFromGraph(params: LoraParams, graphGradient: (inputName: string) => Float32Array): Float32Array[] {
  const r = params.spec.rank;
  return params.modules.flatMap((m) => [
    transposed(graphGradient(loraInputName(m.layer, m.target, "a")), m.inFeatures, r),
    transposed(graphGradient(loraInputName(m.layer, m.target, "b")), r, m.outFeatures, params.scale),
  ]);
}

/** A deep copy (for checkpoints and tests). */
export function cloneLoraParams(params: LoraParams): LoraParams {
  return { spec: { ...params.spec, targets: [...params.spec.targets] }, scale: params.scale, modules: params.modules.map((m) => ({ ...m, a: m.a.slice(), b: m.b.slice() })) };
}
