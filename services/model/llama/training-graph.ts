/**
 * The LoRA training graph of a Llama-family decoder: the forward pass a trainer differentiates.
 * Every position of every sequence, no KV cache, one adapter's matrices on every linear layer as
 * graph inputs, and standard ONNX ops only (no com.microsoft op, no onnxruntime fusion), built
 * from the same functions as the serving graph (services/model/decoder.ts).
 *
 * Graph interface (B = batch, T = tokens):
 *   input_ids       int64 [B, T]
 *   position_ids    int64 [B, T]   rotary position of each token
 *   attention_mask  int64 [B, T]   1 = a real token, 0 = padding (LEFT padding, as in serving)
 *   lora.{i}.{t}.a  float [in, rank]   A^T for layer i and target t, every target of lora-layout.ts
 *   lora.{i}.{t}.b  float [rank, out]  (scale·B)^T (scale folded in)
 *   -> logits       float [B, T, vocab]  at every position
 *   lora.{i}.{t}.dropout  float [B, T, in]  only for `dropoutTargets` (LoRA dropout on): the mask
 *                   multiplied into that branch's input (lora.ts); without them the graph is the same as before
 *   segment_ids     int64 [B, T]   only with `packed`: which sequence of a packed row each token belongs
 *                   to; attention stays within a segment (segmentCausalBias) and position_ids restart at 0
 *                   in each, so a packed row computes what its sequences would separately. Without it the
 *                   graph is the same as before (causal + left padding).
 *   virtual_embeddings  float [V, hidden]  only with `virtualTokens` (prompt tuning): an input id >= vocab
 *                   reads row id - vocab of it instead of the embedding table, as the serving graph does
 *                   (services/model/prompt-tuning.ts); differentiating the loss w.r.t. it trains the prompt
 * A target the adapter leaves out is fed zeros. Rows at padded positions are garbage (a trainer
 * masks them out of the loss).
 */
import type { DecoderConfig } from "../config.ts";
import { Graph, type Value } from "../graph/ir.ts";
import type { LoraTarget } from "../lora-layout.ts";
import { attend, causalBias, groupQueries, headsFirst, mergeHeads, rotatedHeads, segmentCausalBias } from "./attention.ts";
import { embeddingTable, embedWithVirtualTokens, outputHead } from "./head.ts";
import { VIRTUAL_EMBEDDINGS_INPUT } from "../prompt-tuning.ts";
import { singleLora } from "./lora.ts";
import { swiGluMlp } from "./mlp.ts";
import { normWeight, rmsNorm } from "./norm.ts";
import { layerLinear, type LayerLinear } from "./projection.ts";
import { rotaryEmbedding, type RotaryEmbedding } from "./rope.ts";
import type { DecoderWeights } from "./weights.ts";

export interface TrainingGraphOptions {
  /** Targets whose LoRA branch takes a dropout mask input (default none: no mask inputs). */
  dropoutTargets?: readonly LoraTarget[];
  /** Packed rows: a `segment_ids` input and a block-diagonal causal mask (default false: no such input). */
  packed?: boolean;
  /** Prompt tuning: a `virtual_embeddings` input read for ids >= vocab (default false: no such input). */
  virtualTokens?: boolean;
}

export function buildTrainingGraph(config: DecoderConfig, weights: DecoderWeights, options: TrainingGraphOptions = {}): Graph {
  const c = config;
  const g = new Graph("llama_training");
  const inputIds = g.input("input_ids", "int64", ["batch", "seq"]);
  const positionIds = g.input("position_ids", "int64", ["batch", "seq"]);
  const mask = g.input("attention_mask", "int64", ["batch", "seq"]);
  const segmentIds = options.packed ? g.input("segment_ids", "int64", ["batch", "seq"]) : undefined;
  const lora = singleLora(g, options.dropoutTargets);
  const norm = (x: Value, name: string) => rmsNorm(g, x, normWeight(g, weights, c.hiddenSize, name), c.rmsNormEps, false);

  const embedTokens = embeddingTable(g, c, weights);
  let h = options.virtualTokens
    ? embedWithVirtualTokens(g, c, embedTokens, g.input(VIRTUAL_EMBEDDINGS_INPUT, "float32", ["virtual", c.hiddenSize]), inputIds)
    : g.gather(embedTokens, inputIds);
  const rope = rotaryEmbedding(g, c, positionIds, false);
  const bias = segmentIds ? segmentCausalBias(g, c, segmentIds, mask) : causalBias(g, c, inputIds, mask);
  for (let i = 0; i < c.numLayers; i++) {
    const linear = layerLinear(g, c, weights, i, lora);
    h = g.add(h, selfAttention(g, c, linear, rope, norm(h, `model.layers.${i}.input_layernorm.weight`), bias));
    h = g.add(h, swiGluMlp(g, linear, norm(h, `model.layers.${i}.post_attention_layernorm.weight`), c.intermediateSize));
  }
  g.output(outputHead(g, c, weights, norm(h, "model.norm.weight"), embedTokens, false), "logits");
  return g;
}

/** Causal self-attention over the tokens themselves (no past), elementary ops. */
function selfAttention(g: Graph, c: DecoderConfig, linear: LayerLinear, rope: RotaryEmbedding, x: Value, bias: Value): Value {
  const { q, k, v } = rotatedHeads(g, c, linear(x, ["q_proj", "k_proj", "v_proj"], c.attentionBias), rope, false);
  const context = attend(g, c, groupQueries(g, c, headsFirst(g, q)), headsFirst(g, k), headsFirst(g, v), bias, false);
  return linear(mergeHeads(g, c, context), ["o_proj"], false);
}
