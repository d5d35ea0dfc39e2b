/**
 * Random Llama models with real models' layer shapes, written as Hugging Face folders for the
 * benchmarks (bench/adapters.ts, bench/trainer.ts): seeded, so every run measures the same weights.
 */
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { seededRandom } from "../services/adapters/synthetic.ts";
import { writeSafetensors, type TensorToWrite } from "../services/model/safetensors.ts";

/** The layer shape of a random Llama written for a run. */
export interface SyntheticShape {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Default 512 (stories260k's tokenizer). */
  vocab?: number;
  /** Default 256. */
  maxPositions?: number;
}

/** TinyLlama-1.1B's layer shapes and vocabulary, `layers` of its 22 layers. */
export const tinyLlamaShape = (layers: number): SyntheticShape => ({ hidden: 2048, intermediate: 5632, layers, heads: 32, kvHeads: 4, vocab: 32000, maxPositions: 2048 });

/** A random Llama with the given shape in a model folder, with the tokenizer files of `tokenizerFrom` when given. */
export async function writeSyntheticModel(dir: string, shape: SyntheticShape, tokenizerFrom?: string): Promise<void> {
  const { hidden: h, intermediate: m, heads, kvHeads } = shape;
  const headDim = h / heads;
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: h,
    intermediate_size: m,
    num_hidden_layers: shape.layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: shape.vocab ?? 512,
    max_position_embeddings: shape.maxPositions ?? 256,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const random = seededRandom(3);
  const tensors: Record<string, TensorToWrite> = {};
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const data = new Float32Array(shape[0]! * (shape[1] ?? 1));
    for (let i = 0; i < data.length; i++) data[i] = offset + random() * scale;
    tensors[name] = { dtype: "F32", shape, data };
  };
  const scale = 1 / Math.sqrt(h);
  add("model.embed_tokens.weight", [config.vocab_size, h], 0.5);
  add("model.norm.weight", [h], 0.1, 1);
  for (let i = 0; i < shape.layers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, [h], 0.1, 1);
    add(`${p}post_attention_layernorm.weight`, [h], 0.1, 1);
    add(`${p}self_attn.q_proj.weight`, [h, h], scale);
    add(`${p}self_attn.k_proj.weight`, [kvHeads * headDim, h], scale);
    add(`${p}self_attn.v_proj.weight`, [kvHeads * headDim, h], scale);
    add(`${p}self_attn.o_proj.weight`, [h, h], scale);
    add(`${p}mlp.gate_proj.weight`, [m, h], scale);
    add(`${p}mlp.up_proj.weight`, [m, h], scale);
    add(`${p}mlp.down_proj.weight`, [h, m], 1 / Math.sqrt(m));
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), JSON.stringify(config));
  await writeFile(join(dir, "model.safetensors"), writeSafetensors(tensors));
  if (tokenizerFrom) for (const file of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(tokenizerFrom, file), join(dir, file));
}
