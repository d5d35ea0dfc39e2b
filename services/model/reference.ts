/**
 * Plain TypeScript reference forward pass of a Llama-family decoder (llama, mistral, qwen2),
 * written from the model math with loops over Float32Arrays. It exists to check the compiled ONNX
 * graph and shares nothing with the compiler but the config type: slow, simple, one sequence at a
 * time, with its own KV cache. A LoRA adapter is checked by passing merged weights W + s·B·A.
 */
import type { DecoderConfig } from "./config.ts";

/** Looks up a Hugging Face tensor by name as float32 ([out, in] for linear weights). */
export type WeightLookup = (name: string) => Float32Array;

interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** Keys and values of the positions seen so far, per layer, [position][kvHead * headDim]. */
export interface ReferenceCache {
  keys: Float32Array[][];
  values: Float32Array[][];
}

export class ReferenceDecoder {
  private readonly embed: Float32Array;
  private readonly lmHead: Float32Array;
  private readonly finalNorm: Float32Array;
  private readonly layers: LayerWeights[];
  private readonly invFreq: Float64Array;

  constructor(
    readonly config: DecoderConfig,
    weights: WeightLookup,
  ) {
    this.embed = weights("model.embed_tokens.weight");
    this.lmHead = config.tieWordEmbeddings ? this.embed : weights("lm_head.weight");
    this.finalNorm = weights("model.norm.weight");
    this.layers = Array.from({ length: config.numLayers }, (_, i) => {
      const p = `model.layers.${i}.`;
      const bias = (name: string) => (config.attentionBias ? weights(`${p}self_attn.${name}.bias`) : undefined);
      return {
        inputNorm: weights(`${p}input_layernorm.weight`),
        q: weights(`${p}self_attn.q_proj.weight`),
        k: weights(`${p}self_attn.k_proj.weight`),
        v: weights(`${p}self_attn.v_proj.weight`),
        o: weights(`${p}self_attn.o_proj.weight`),
        qBias: bias("q_proj"),
        kBias: bias("k_proj"),
        vBias: bias("v_proj"),
        postNorm: weights(`${p}post_attention_layernorm.weight`),
        gate: weights(`${p}mlp.gate_proj.weight`),
        up: weights(`${p}mlp.up_proj.weight`),
        down: weights(`${p}mlp.down_proj.weight`),
      };
    });
    this.invFreq = inverseFrequencies(config);
  }

  newCache(): ReferenceCache {
    return {
      keys: this.layers.map(() => []),
      values: this.layers.map(() => []),
    };
  }

  /**
   * Runs `tokens` after the positions already in `cache` (appending to it) and returns the logits
   * of every token. Prefill is `forward(cache, prompt)`; decoding is one token at a time.
   */
  forward(cache: ReferenceCache, tokens: number[]): Float32Array[] {
    const hidden = this.config.hiddenSize;
    return tokens.map((token) => this.step(cache, this.embed.slice(token * hidden, (token + 1) * hidden)));
  }

  /**
   * As `forward`, for input embeddings instead of tokens (each [hidden]): prompt tuning's virtual
   * tokens are `forwardEmbeddings(cache, virtual)` before `forward(cache, prompt)`.
   */
  forwardEmbeddings(cache: ReferenceCache, embeddings: Float32Array[]): Float32Array[] {
    return embeddings.map((e) => this.step(cache, e.slice()));
  }

  private step(cache: ReferenceCache, input: Float32Array): Float32Array {
    const c = this.config;
    const position = cache.keys[0].length;
    let h: Float32Array = input;
    this.layers.forEach((layer, i) => {
      const attn = this.attention(layer, rmsNorm(h, layer.inputNorm, c.rmsNormEps), position, cache.keys[i], cache.values[i]);
      h = addVectors(h, attn);
      h = addVectors(h, this.mlp(layer, rmsNorm(h, layer.postNorm, c.rmsNormEps)));
    });
    return linear(rmsNorm(h, this.finalNorm, c.rmsNormEps), this.lmHead, c.vocabSize);
  }

  private attention(w: LayerWeights, x: Float32Array, position: number, keys: Float32Array[], values: Float32Array[]): Float32Array {
    const { numHeads, numKvHeads, headDim, hiddenSize } = this.config;
    const q = linear(x, w.q, numHeads * headDim, w.qBias);
    const k = linear(x, w.k, numKvHeads * headDim, w.kBias);
    const v = linear(x, w.v, numKvHeads * headDim, w.vBias);
    for (let hd = 0; hd < numHeads; hd++) this.rotate(q, hd * headDim, position);
    for (let hd = 0; hd < numKvHeads; hd++) this.rotate(k, hd * headDim, position);
    keys.push(k);
    values.push(v);

    const out = new Float32Array(numHeads * headDim);
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(headDim);
    for (let hd = 0; hd < numHeads; hd++) {
      const kvOffset = Math.floor(hd / group) * headDim;
      const scores = keys.map((key) => {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[hd * headDim + d] * key[kvOffset + d];
        return dot * scale;
      });
      const probs = softmax(scores);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let t = 0; t < probs.length; t++) acc += probs[t] * values[t][kvOffset + d];
        out[hd * headDim + d] = acc;
      }
    }
    return linear(out, w.o, hiddenSize);
  }

  /** Rotate-half RoPE on one head: pairs (i, i + headDim/2) rotate by position·invFreq[i]. */
  private rotate(vec: Float32Array, offset: number, position: number): void {
    const half = this.config.headDim / 2;
    for (let i = 0; i < half; i++) {
      const angle = position * this.invFreq[i];
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const a = vec[offset + i];
      const b = vec[offset + half + i];
      vec[offset + i] = a * cos - b * sin;
      vec[offset + half + i] = b * cos + a * sin;
    }
  }

  private mlp(w: LayerWeights, x: Float32Array): Float32Array {
    const { intermediateSize, hiddenSize } = this.config;
    const gate = linear(x, w.gate, intermediateSize);
    const up = linear(x, w.up, intermediateSize);
    for (let i = 0; i < intermediateSize; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
    return linear(gate, w.down, hiddenSize);
  }
}

/** RoPE inverse frequencies, with Llama 3's frequency-dependent scaling when configured. */
export function inverseFrequencies(config: DecoderConfig): Float64Array {
  const half = config.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / config.headDim);
  const s = config.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowWavelen) inv[i] /= s.factor;
    else if (wavelen >= highWavelen) {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
    }
  }
  return inv;
}

/** y = W·x (+ bias) for W stored [out, in] row-major. */
function linear(x: Float32Array, w: Float32Array, outSize: number, bias?: Float32Array): Float32Array {
  const inSize = x.length;
  const y = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let acc = bias ? bias[o] : 0;
    const row = o * inSize;
    for (let i = 0; i < inSize; i++) acc += w[row + i] * x[i];
    y[o] = acc;
  }
  return y;
}

function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  let sumSquares = 0;
  for (let i = 0; i < x.length; i++) sumSquares += x[i] * x[i];
  const inv = 1 / Math.sqrt(sumSquares / x.length + eps);
  return x.map((v, i) => v * inv * weight[i]);
}

function softmax(scores: number[]): number[] {
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function addVectors(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}
