import { dirname, resolve } from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { attr, Graph, type Value } from "../../../services/model/graph/ir.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** A model folder found on SWITCHYARD_MODEL_PATH (default "./models:../shared/models", relative to the repo root). */
export function findModel(name: string): string {
  const searchPath = process.env.SWITCHYARD_MODEL_PATH ?? "./models:../shared/models";
  for (const entry of searchPath.split(":")) {
    const dir = resolve(REPO_ROOT, entry, name);
    if (existsSync(dir)) return dir;
  }
  throw new Error(`model ${name} not found on ${searchPath}`);
}

export interface TinyBertWeights {
  vocab: number;
  hidden: number;
  maxPositions: number;
  tensors: Record<string, Float32Array>;
}

/** Seeded random weights for a one-layer, one-head BERT-style encoder. */
export function tinyBertWeights(vocab: number, hidden = 8, maxPositions = 64, seed = 7): TinyBertWeights {
  let state = seed;
  const rand = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const t = (n: number, scale = 0.5) => Float32Array.from({ length: n }, () => rand() * scale);
  const h = hidden;
  return {
    vocab, hidden, maxPositions,
    tensors: {
      word: t(vocab * h), pos: t(maxPositions * h), type: t(2 * h),
      ln1g: t(h, 0.2).map((x) => 1 + x), ln1b: t(h, 0.1),
      wq: t(h * h), bq: t(h, 0.1), wk: t(h * h), bk: t(h, 0.1), wv: t(h * h), bv: t(h, 0.1), wo: t(h * h), bo: t(h, 0.1),
      ln2g: t(h, 0.2).map((x) => 1 + x), ln2b: t(h, 0.1),
      w1: t(h * 2 * h), b1: t(2 * h, 0.1), w2: t(2 * h * h), b2: t(h, 0.1),
      ln3g: t(h, 0.2).map((x) => 1 + x), ln3b: t(h, 0.1),
    },
  };
}

const EPS = 1e-12;

/** The encoder as an IR graph: input_ids, attention_mask, token_type_ids -> last_hidden_state. */
export function tinyBertGraph(w: TinyBertWeights): Graph {
  const g = new Graph("tiny-bert");
  const h = w.hidden;
  const p = (name: string, shape: number[]) => g.initializer(name, "float32", shape, w.tensors[name]);
  const ids = g.input("input_ids", "int64", ["batch", "seq"]);
  const mask = g.input("attention_mask", "int64", ["batch", "seq"]);
  const types = g.input("token_type_ids", "int64", ["batch", "seq"]);
  const seq = g.slice(g.shapeOf(ids), [1], [2], [0]);
  const positions = g.op1("Slice", [p("pos", [w.maxPositions, h]), g.constInt64([0]), seq, g.constInt64([0])]);
  const ln = (x: Value, gamma: string, beta: string) =>
    g.op1("LayerNormalization", [x, p(gamma, [h]), p(beta, [h])], { attrs: { axis: attr.int(-1), epsilon: attr.float(EPS) } });
  let x = ln(g.add(g.add(g.gather(p("word", [w.vocab, h]), ids), positions), g.gather(p("type", [2, h]), types)), "ln1g", "ln1b");
  const q = g.linear(x, p("wq", [h, h]), p("bq", [h]));
  const k = g.linear(x, p("wk", [h, h]), p("bk", [h]));
  const v = g.linear(x, p("wv", [h, h]), p("bv", [h]));
  const bias = g.unsqueeze(g.mul(g.sub(g.constFloat([1]), g.cast(mask, "float32")), g.constFloat([-10000])), [1]);
  const scores = g.add(g.mul(g.matmul(q, g.transpose(k, [0, 2, 1])), g.constFloat([1 / Math.sqrt(h)])), bias);
  x = ln(g.add(x, g.linear(g.matmul(g.softmax(scores), v), p("wo", [h, h]), p("bo", [h]))), "ln2g", "ln2b");
  const ffn = g.linear(g.relu(g.linear(x, p("w1", [h, 2 * h]), p("b1", [2 * h]))), p("w2", [2 * h, h]), p("b2", [h]));
  g.output(ln(g.add(x, ffn), "ln3g", "ln3b"), "last_hidden_state");
  return g;
}

/** Plain-TypeScript forward pass of the same encoder for one sequence, then mean pooling and L2 normalisation. */
export function tinyBertReferenceEmbedding(w: TinyBertWeights, ids: number[]): Float64Array {
  const h = w.hidden;
  const T = w.tensors;
  const n = ids.length;
  const row = (m: Float32Array, i: number, width = h) => Array.from(m.subarray(i * width, (i + 1) * width));
  const linear = (x: number[], wt: Float32Array, b: Float32Array, out: number) =>
    Array.from({ length: out }, (_, j) => x.reduce((s, xi, i) => s + xi * wt[i * out + j], b[j]));
  const layerNorm = (x: number[], gamma: Float32Array, beta: Float32Array) => {
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
    return x.map((xi, i) => ((xi - mean) / Math.sqrt(variance + EPS)) * gamma[i] + beta[i]);
  };
  let x = ids.map((id, t) => layerNorm(row(T.word, id).map((e, i) => e + T.pos[t * h + i] + T.type[i]), T.ln1g, T.ln1b));
  const q = x.map((xi) => linear(xi, T.wq, T.bq, h));
  const k = x.map((xi) => linear(xi, T.wk, T.bk, h));
  const v = x.map((xi) => linear(xi, T.wv, T.bv, h));
  x = x.map((xi, t) => {
    const scores = k.map((kj) => kj.reduce((s, kv, i) => s + kv * q[t][i], 0) / Math.sqrt(h));
    const max = Math.max(...scores);
    const exps = scores.map((s) => Math.exp(s - max));
    const total = exps.reduce((a, b) => a + b, 0);
    const ctx = Array.from({ length: h }, (_, i) => exps.reduce((s, e, j) => s + (e / total) * v[j][i], 0));
    const attn = linear(ctx, T.wo, T.bo, h);
    return layerNorm(xi.map((xv, i) => xv + attn[i]), T.ln2g, T.ln2b);
  });
  x = x.map((xi) => {
    const mid = linear(xi, T.w1, T.b1, 2 * h).map((m) => Math.max(0, m));
    const f = linear(mid, T.w2, T.b2, h);
    return layerNorm(xi.map((xv, i) => xv + f[i]), T.ln3g, T.ln3b);
  });
  const mean = Array.from({ length: h }, (_, i) => x.reduce((s, xt) => s + xt[i], 0) / n);
  const norm = Math.hypot(...mean);
  return Float64Array.from(mean, (m) => m / norm);
}
