/** Random tiny Llama-family models built in memory for the engine tests. */
import { type LoraModuleKey, loraModuleName, type LoraTarget, type LoraWeights, projectionShape } from "../../services/model/lora-layout.ts";
import type { DecoderConfig } from "../../services/model/config.ts";
import { openWeights } from "../../services/model/safetensors.ts";

export class MemoryWeights {
  constructor(readonly tensors: Map<string, Float32Array>) {}

  /** Every tensor of a model folder's safetensors, read into memory. */
  static async load(dir: string): Promise<MemoryWeights> {
    const store = await openWeights(dir);
    try {
      return new MemoryWeights(new Map(store.names().map((n) => [n, store.getF32(n)])));
    } finally {
      store.close();
    }
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  getF32(name: string): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t.slice();
  }
  names(): string[] {
    return [...this.tensors.keys()];
  }
}

/** Deterministic uniform values in [-scale, scale). */
export function randomArray(n: number, seed: number, scale: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

export function tinyConfig(overrides: Partial<DecoderConfig> = {}): DecoderConfig {
  return {
    architecture: "llama",
    hiddenSize: 24,
    intermediateSize: 37,
    numLayers: 2,
    numHeads: 6,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 53,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: false,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenIds: [2],
    ...overrides,
  };
}

export function randomWeights(c: DecoderConfig, seed: number): MemoryWeights {
  const t = new Map<string, Float32Array>();
  let n = seed * 1000;
  const add = (name: string, size: number, scale: number, offset = 0) => {
    const a = randomArray(size, ++n, scale);
    if (offset) for (let i = 0; i < a.length; i++) a[i] += offset;
    t.set(name, a);
  };
  const { hiddenSize: h, intermediateSize: m, numHeads, numKvHeads, headDim: d } = c;
  add("model.embed_tokens.weight", c.vocabSize * h, 1);
  if (!c.tieWordEmbeddings) add("lm_head.weight", c.vocabSize * h, 0.3);
  add("model.norm.weight", h, 0.2, 1);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, h, 0.2, 1);
    add(`${p}post_attention_layernorm.weight`, h, 0.2, 1);
    add(`${p}self_attn.q_proj.weight`, numHeads * d * h, 0.4);
    add(`${p}self_attn.k_proj.weight`, numKvHeads * d * h, 0.4);
    add(`${p}self_attn.v_proj.weight`, numKvHeads * d * h, 0.4);
    add(`${p}self_attn.o_proj.weight`, h * numHeads * d, 0.3);
    if (c.attentionBias) {
      add(`${p}self_attn.q_proj.bias`, numHeads * d, 0.3);
      add(`${p}self_attn.k_proj.bias`, numKvHeads * d, 0.3);
      add(`${p}self_attn.v_proj.bias`, numKvHeads * d, 0.3);
    }
    add(`${p}mlp.gate_proj.weight`, m * h, 0.3);
    add(`${p}mlp.up_proj.weight`, m * h, 0.3);
    add(`${p}mlp.down_proj.weight`, h * m, 0.3);
  }
  return new MemoryWeights(t);
}

export const TINY_VARIANTS: Record<string, DecoderConfig> = {
  "llama untied GQA, odd sizes": tinyConfig(),
  "llama tied, multi-head (no GQA)": tinyConfig({ numKvHeads: 6, tieWordEmbeddings: true, intermediateSize: 19 }),
  "qwen2 with q/k/v biases and explicit head_dim": tinyConfig({
    architecture: "qwen2",
    attentionBias: true,
    hiddenSize: 20,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 6,
    ropeTheta: 1_000_000,
  }),
  "llama 3 rope scaling": tinyConfig({
    numLayers: 3,
    headDim: 8,
    numHeads: 4,
    numKvHeads: 1,
    hiddenSize: 28,
    ropeTheta: 10000,
    ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  }),
};

/** A random adapter over `targets` with the given rank; scale folded into b as the contract says. */
export function randomAdapter(config: DecoderConfig, id: string, rank: number, targets: readonly LoraTarget[], seed: number): LoraWeights {
  const modules = new Map<LoraModuleKey, { rank: number; a: Float32Array; b: Float32Array }>();
  let n = seed * 100;
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of targets) {
      const { in: inSize, out } = projectionShape(config, target);
      modules.set(`layers.${layer}.${target}`, { rank, a: randomArray(inSize * rank, ++n, 0.5), b: randomArray(rank * out, ++n, 0.5) });
    }
  }
  return { id, maxRank: rank, modules, bytes: 0 };
}


/** W + (a·b)^T for every adapted module, in Hugging Face [out, in] layout. */
export function mergedWeights(config: DecoderConfig, base: MemoryWeights, adapter: LoraWeights): MemoryWeights {
  const merged = new Map(base.tensors);
  for (const [key, m] of adapter.modules) {
    const [, layer, target] = key.split(".");
    const name = `${loraModuleName(Number(layer), target as LoraTarget)}.weight`;
    const w = base.getF32(name);
    const { in: inSize, out } = projectionShape(config, target as LoraTarget);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inSize; i++) {
        let delta = 0;
        for (let r = 0; r < m.rank; r++) delta += m.a[i * m.rank + r] * m.b[r * out + o];
        w[o * inSize + i] += delta;
      }
    }
    merged.set(name, w);
  }
  return new MemoryWeights(merged);
}


/** The Hugging Face shape of a tensor of `randomWeights` ([out, in] for linear layers). */
export function hfShape(c: DecoderConfig, name: string): number[] {
  const { hiddenSize: h, intermediateSize: m, numHeads, numKvHeads, headDim: d } = c;
  if (name.endsWith("norm.weight") || name.endsWith("layernorm.weight")) return [h];
  if (name === "model.embed_tokens.weight" || name === "lm_head.weight") return [c.vocabSize, h];
  const shapes: Record<string, number[]> = {
    "q_proj.weight": [numHeads * d, h],
    "k_proj.weight": [numKvHeads * d, h],
    "v_proj.weight": [numKvHeads * d, h],
    "o_proj.weight": [h, numHeads * d],
    "q_proj.bias": [numHeads * d],
    "k_proj.bias": [numKvHeads * d],
    "v_proj.bias": [numKvHeads * d],
    "gate_proj.weight": [m, h],
    "up_proj.weight": [m, h],
    "down_proj.weight": [h, m],
  };
  const shape = shapes[name.split(".").slice(-2).join(".")];
  if (!shape) throw new Error(`no shape for ${name}`);
  return shape;
}
