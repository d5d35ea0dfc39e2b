/**
 * Writes a Hugging Face Llama folder as a GGUF v3 file that llama.cpp loads, so the engine benchmark can
 * run llama.cpp (node-llama-cpp) on the same weights. llama.cpp's conventions, from its GGUF spec and
 * its HF converter:
 * - metadata: general.architecture "llama", the llama.* hyperparameters, a "llama" (SentencePiece-style)
 *   vocabulary built from tokenizer.json: tokens, scores (a merge's rank, earlier merges score higher),
 *   token types (byte-fallback pieces as BYTE, specials as CONTROL);
 * - tensor names token_embd, blk.N.attn_q/k/v/output, ffn_gate/up/down, attn_norm, ffn_norm, output_norm,
 *   output (left out when tied: llama.cpp then reuses token_embd);
 * - q/k rows permuted from Hugging Face's rotate-half layout back to the interleaved pairs llama.cpp rotates;
 * - dims listed innermost first (a [rows, cols] matrix is ne = [cols, rows]); data aligned to 32 bytes;
 * - Q8_0 and Q4_0 as ggml's reference quantizers define them (blocks of 32 along a row). A matrix whose
 *   rows are not a multiple of 32 long (stories260k's ffn_down, 172) stays F32, as the result lists.
 * The file is streamed tensor by tensor, so a 1 GB model never sits in memory twice.
 */
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { loadDecoderConfig, type DecoderConfig } from "../services/model/config.ts";
import { floatToHalf, openWeights, type WeightStore } from "../services/model/safetensors.ts";

export type GgufWeightType = "F32" | "Q8_0" | "Q4_0";

export interface GgufWritten {
  path: string;
  bytes: number;
  tensors: number;
  /** Tensors that stayed F32 although a quantized type was asked for (row length not a multiple of 32). */
  keptF32: string[];
}

const ALIGNMENT = 32;
const BLOCK = 32;
/** ggml_type ids. */
const GGML_TYPE = { F32: 0, Q4_0: 2, Q8_0: 8 } as const;
/** llama_ftype ids (general.file_type): what most tensors are. */
const FILE_TYPE = { F32: 0, Q4_0: 2, Q8_0: 7 } as const;
/** Bytes of one 32-value block: an f16 scale and the packed values. */
const BLOCK_BYTES = { Q8_0: 2 + 32, Q4_0: 2 + 16 } as const;
/** llama.cpp's token types (llama_token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, unused: 5, byte: 6 } as const;

/** GGUF metadata value type ids. */
const KV_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

type KvValue =
  | { type: "u32" | "i32" | "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "strings"; values: string[] }
  | { type: "f32s" | "i32s"; values: ArrayLike<number> };

/** Little-endian bytes, grown as written. */
class ByteWriter {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
  u8(v: number): void {
    this.reserve(1);
    this.length = this.buffer.writeUInt8(v, this.length);
  }
  u32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.reserve(8);
    this.length = this.buffer.writeBigUInt64LE(BigInt(v), this.length);
  }
  f32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeFloatLE(v, this.length);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.length += bytes.copy(this.buffer, this.length);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
    this.buffer.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function writeKv(w: ByteWriter, key: string, kv: KvValue): void {
  w.string(key);
  switch (kv.type) {
    case "u32":
    case "i32":
    case "f32":
      w.u32(KV_TYPE[kv.type]);
      w[kv.type](kv.value);
      return;
    case "bool":
      w.u32(KV_TYPE.bool);
      w.u8(kv.value ? 1 : 0);
      return;
    case "string":
      w.u32(KV_TYPE.string);
      w.string(kv.value);
      return;
    case "strings":
      w.u32(KV_TYPE.array);
      w.u32(KV_TYPE.string);
      w.u64(kv.values.length);
      for (const s of kv.values) w.string(s);
      return;
    case "f32s":
    case "i32s": {
      const item = kv.type === "f32s" ? "f32" : "i32";
      w.u32(KV_TYPE.array);
      w.u32(KV_TYPE[item]);
      w.u64(kv.values.length);
      for (let i = 0; i < kv.values.length; i++) w[item](kv.values[i]!);
    }
  }
}

interface Vocabulary {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  bos?: number;
  eos?: number;
  unk?: number;
  addBos: boolean;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; unk_token?: string };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

/** tokenizer.json's BPE vocabulary as llama.cpp's SentencePiece-style one, padded to `vocabSize` rows. */
async function loadVocabulary(dir: string, vocabSize: number): Promise<Vocabulary> {
  const json = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8")) as TokenizerJson;
  const model = json.model;
  if (model?.type !== "BPE" || !model.vocab) throw new Error(`${dir}/tokenizer.json: only BPE vocabularies are converted`);
  const tokens: string[] = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const types = new Int32Array(vocabSize).fill(TOKEN_TYPE.unused);
  const scores = new Float32Array(vocabSize);
  const merges = model.merges ?? [];
  const rank = new Map(merges.map((m, i) => [typeof m === "string" ? m.replace(" ", "") : m.join(""), i]));
  for (const [text, id] of Object.entries(model.vocab)) {
    if (id >= vocabSize) throw new Error(`token ${id} is outside the model's ${vocabSize} embeddings`);
    tokens[id] = text;
    types[id] = /^<0x[0-9A-Fa-f]{2}>$/.test(text) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal;
    // SentencePiece merges the highest-scoring pair first, so a merge's score falls with its rank; pieces no merge makes never win.
    scores[id] = [...text].length === 1 ? 0 : -(rank.get(text) ?? merges.length + id);
  }
  const special = new Map<string, number>();
  for (const t of json.added_tokens ?? []) {
    tokens[t.id] = t.content;
    if (t.special) {
      types[t.id] = t.content === model.unk_token ? TOKEN_TYPE.unknown : TOKEN_TYPE.control;
      special.set(t.content, t.id);
    }
  }
  let config: { bos_token?: unknown; eos_token?: unknown; add_bos_token?: unknown } = {};
  try {
    config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
  } catch {
    // optional
  }
  const idOf = (value: unknown) => (typeof value === "string" ? special.get(value) : undefined);
  return {
    tokens,
    scores,
    types,
    bos: idOf(config.bos_token),
    eos: idOf(config.eos_token),
    unk: model.unk_token === undefined ? undefined : special.get(model.unk_token),
    addBos: config.add_bos_token !== false,
  };
}

function metadata(config: DecoderConfig, vocab: Vocabulary, type: GgufWeightType, name: string): [string, KvValue][] {
  const u32 = (value: number): KvValue => ({ type: "u32", value });
  const f32 = (value: number): KvValue => ({ type: "f32", value });
  const kv: [string, KvValue][] = [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: name }],
    ["general.file_type", u32(FILE_TYPE[type])],
    ["general.quantization_version", u32(2)],
    ["general.alignment", u32(ALIGNMENT)],
    ["llama.vocab_size", u32(config.vocabSize)],
    ["llama.context_length", u32(config.maxPositionEmbeddings)],
    ["llama.embedding_length", u32(config.hiddenSize)],
    ["llama.block_count", u32(config.numLayers)],
    ["llama.feed_forward_length", u32(config.intermediateSize)],
    ["llama.attention.head_count", u32(config.numHeads)],
    ["llama.attention.head_count_kv", u32(config.numKvHeads)],
    ["llama.attention.key_length", u32(config.headDim)],
    ["llama.attention.value_length", u32(config.headDim)],
    ["llama.attention.layer_norm_rms_epsilon", f32(config.rmsNormEps)],
    ["llama.rope.freq_base", f32(config.ropeTheta)],
    ["llama.rope.dimension_count", u32(config.headDim)],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "strings", values: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "f32s", values: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "i32s", values: vocab.types }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: vocab.addBos }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ];
  const bos = vocab.bos ?? config.bosTokenId;
  if (bos !== undefined) kv.push(["tokenizer.ggml.bos_token_id", u32(bos)]);
  const eos = vocab.eos ?? config.eosTokenIds[0];
  if (eos !== undefined) kv.push(["tokenizer.ggml.eos_token_id", u32(eos)]);
  if (vocab.unk !== undefined) kv.push(["tokenizer.ggml.unknown_token_id", u32(vocab.unk)]);
  return kv;
}

interface PlannedTensor {
  name: string;
  source: string;
  /** Row-major [rows, cols] (or [n] for a vector), as in the safetensors file. */
  shape: number[];
  type: GgufWeightType;
  /** Heads whose rows are permuted from rotate-half to interleaved pairs (q and k only). */
  permuteHeads?: number;
}

function plan(config: DecoderConfig, weights: WeightStore, type: GgufWeightType): PlannedTensor[] {
  const tensors: PlannedTensor[] = [];
  const add = (name: string, source: string, permuteHeads?: number) => {
    const { shape } = weights.info(source);
    const rowLength = shape.at(-1)!;
    const quantizable = shape.length === 2 && rowLength % BLOCK === 0;
    tensors.push({ name, source, shape, type: shape.length === 2 && quantizable ? type : "F32", permuteHeads });
  };
  add("token_embd.weight", "model.embed_tokens.weight");
  add("output_norm.weight", "model.norm.weight");
  if (!config.tieWordEmbeddings && weights.has("lm_head.weight")) add("output.weight", "lm_head.weight");
  for (let i = 0; i < config.numLayers; i++) {
    const hf = `model.layers.${i}.`;
    const gg = `blk.${i}.`;
    add(`${gg}attn_norm.weight`, `${hf}input_layernorm.weight`);
    add(`${gg}attn_q.weight`, `${hf}self_attn.q_proj.weight`, config.numHeads);
    add(`${gg}attn_k.weight`, `${hf}self_attn.k_proj.weight`, config.numKvHeads);
    add(`${gg}attn_v.weight`, `${hf}self_attn.v_proj.weight`);
    add(`${gg}attn_output.weight`, `${hf}self_attn.o_proj.weight`);
    add(`${gg}ffn_norm.weight`, `${hf}post_attention_layernorm.weight`);
    add(`${gg}ffn_gate.weight`, `${hf}mlp.gate_proj.weight`);
    add(`${gg}ffn_up.weight`, `${hf}mlp.up_proj.weight`);
    add(`${gg}ffn_down.weight`, `${hf}mlp.down_proj.weight`);
  }
  return tensors;
}

/**
 * Hugging Face stores each head's rotary rows as [first halves..., second halves...]; llama.cpp rotates
 * adjacent pairs, so row (t·half + i) of a head moves to (2i + t).
 */
export function permuteRotaryRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const perHead = rows / heads;
  const half = perHead / 2;
  if (!Number.isInteger(half)) throw new Error(`${rows} rows do not split into ${heads} heads of even size`);
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < 2; t++) {
      for (let i = 0; i < half; i++) {
        const from = (h * perHead + t * half + i) * cols;
        out.set(w.subarray(from, from + cols), (h * perHead + 2 * i + t) * cols);
      }
    }
  }
  return out;
}

/** ggml's Q8_0: per 32 values, d = max|x| / 127 (f16), q = round(x / d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const blocks = x.length / BLOCK;
  const out = new Uint8Array(blocks * BLOCK_BYTES.Q8_0);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * BLOCK;
    let amax = 0;
    for (let j = 0; j < BLOCK; j++) amax = Math.max(amax, Math.abs(x[base + j]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const at = b * BLOCK_BYTES.Q8_0;
    view.setUint16(at, floatToHalf(d), true);
    for (let j = 0; j < BLOCK; j++) view.setInt8(at + 2 + j, roundHalfAway(Math.fround(x[base + j]! * id)));
  }
  return out;
}

/** ggml's Q4_0: per 32 values, d = (the value of largest magnitude) / -8 (f16), nibbles of x/d + 8; value j and j+16 share a byte. */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const blocks = x.length / BLOCK;
  const out = new Uint8Array(blocks * BLOCK_BYTES.Q4_0);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < BLOCK; j++) {
      const v = x[base + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const at = b * BLOCK_BYTES.Q4_0;
    view.setUint16(at, floatToHalf(d), true);
    const nibble = (v: number) => Math.min(15, Math.trunc(Math.fround(v * id) + 8.5));
    for (let j = 0; j < BLOCK / 2; j++) out[at + 2 + j] = nibble(x[base + j]!) | (nibble(x[base + BLOCK / 2 + j]!) << 4);
  }
  return out;
}

/** C's roundf: halves away from zero (Math.round rounds -2.5 to -2). */
function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}

function byteLength(t: PlannedTensor): number {
  const count = t.shape.reduce((a, b) => a * b, 1);
  return t.type === "F32" ? count * 4 : (count / BLOCK) * BLOCK_BYTES[t.type];
}

function encode(t: PlannedTensor, weights: WeightStore): Uint8Array {
  let values: Float32Array = weights.getF32(t.source);
  if (t.permuteHeads !== undefined) values = permuteRotaryRows(values, t.shape[0]!, t.shape[1]!, t.permuteHeads);
  if (t.type === "Q8_0") return quantizeQ8_0(values);
  if (t.type === "Q4_0") return quantizeQ4_0(values);
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Writes the model in `modelDir` to `path` as GGUF v3 with 2-D weights of `type`. */
export async function writeGguf(modelDir: string, path: string, type: GgufWeightType): Promise<GgufWritten> {
  const [config, weights] = await Promise.all([loadDecoderConfig(modelDir), openWeights(modelDir)]);
  try {
    if (config.architecture !== "llama" || config.ropeScaling || config.attentionBias) {
      throw new Error(`${modelDir}: only plain Llama models (no rope scaling, no attention bias) are converted`);
    }
    const vocab = await loadVocabulary(modelDir, config.vocabSize);
    const tensors = plan(config, weights, type);
    const kv = metadata(config, vocab, type, modelDir.split("/").filter(Boolean).at(-1) ?? "model");

    const header = new ByteWriter();
    header.u32(0x46554747); // "GGUF"
    header.u32(3);
    header.u64(tensors.length);
    header.u64(kv.length);
    for (const [key, value] of kv) writeKv(header, key, value);
    let offset = 0;
    const offsets: number[] = [];
    for (const t of tensors) {
      header.string(t.name);
      header.u32(t.shape.length);
      for (const d of [...t.shape].reverse()) header.u64(d);
      header.u32(GGML_TYPE[t.type]);
      header.u64(offset);
      offsets.push(offset);
      offset += byteLength(t);
      offset += (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT;
    }
    header.padTo(ALIGNMENT);

    const file = await open(path, "w");
    try {
      await file.write(header.bytes());
      const dataStart = header.length;
      for (let i = 0; i < tensors.length; i++) {
        const bytes = encode(tensors[i]!, weights);
        await file.write(bytes, 0, bytes.length, dataStart + offsets[i]!);
      }
      await file.truncate(dataStart + offset);
    } finally {
      await file.close();
    }
    const keptF32 = tensors.filter((t) => type !== "F32" && t.shape.length === 2 && t.type === "F32").map((t) => t.name);
    return { path, bytes: header.length + offset, tensors: tensors.length, keptF32 };
  } finally {
    weights.close();
  }
}
