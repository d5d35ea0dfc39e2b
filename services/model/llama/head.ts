/**
 * Token embedding and the output head. Tied models use the embedding matrix as the head; with
 * `fused: true` the head is com.microsoft FusedMatMul (transB) and a tied head shares the
 * embedding initializer, otherwise it is a standard MatMul by a transposed copy [hidden, vocab].
 * With quantized weights (int8/int4) the head, read whole every step, is quantized like the projections
 * (MatMulNBits); the embedding table, of which a step reads only its tokens' rows, stays float.
 */
import type { DecoderConfig } from "../config.ts";
import { attr, type Graph, type Value } from "../graph/ir.ts";
import { quantize, type WeightFormat } from "../quantize.ts";
import { quantizedMatMul, transposeInto, type Int8Weights } from "./projection.ts";
import { locateInPlace, requireWeight, type DecoderWeights } from "./weights.ts";

type HeadConfig = Pick<DecoderConfig, "vocabSize" | "hiddenSize" | "tieWordEmbeddings">;

/** The embedding matrix [vocab, hidden] as an initializer. */
export function embeddingTable(g: Graph, c: HeadConfig, weights: DecoderWeights, allowInPlace = false): Value {
  return floatMatrix(g, "embed_tokens", [c.vocabSize, c.hiddenSize], weights, "model.embed_tokens.weight", allowInPlace);
}

/** A float32 weight as an initializer: where it lies in the source file when allowed and large enough (`locateInPlace`). */
function floatMatrix(g: Graph, name: string, shape: number[], weights: DecoderWeights, weightName: string, allowInPlace: boolean): Value {
  const [inPlace] = (allowInPlace && locateInPlace(weights, [weightName])) || [];
  return g.initializer(name, "float32", shape, inPlace ?? requireWeight(weights, weightName));
}

/**
 * Embeddings of `ids` where an id at or past the vocabulary is a virtual token, reading row
 * (id - vocab) of `virtual` [E, hidden] (prompt tuning; services/model/prompt-tuning.ts).
 */
export function embedWithVirtualTokens(g: Graph, c: HeadConfig, table: Value, virtual: Value, ids: Value): Value {
  const vocab = g.constInt64([c.vocabSize], []);
  const zero = g.constInt64([0], []);
  const isToken = g.less(ids, vocab);
  const tokenRows = g.gather(table, g.where(isToken, ids, zero));
  const virtualRows = g.gather(virtual, g.where(isToken, zero, g.sub(ids, vocab)));
  return g.where(g.unsqueeze(isToken, [-1]), tokenRows, virtualRows);
}

/** hidden [.., hidden] · headᵀ -> logits [.., vocab]. */
export function outputHead(g: Graph, c: HeadConfig, weights: DecoderWeights, hidden: Value, embedTokens: Value, fused: boolean, format: WeightFormat = "f32", int8Weights: Int8Weights = "uint8"): Value {
  if (format !== "f32") {
    const head = () => requireWeight(weights, c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    return quantizedMatMul(g, hidden, "lm_head", weights, () => quantize(head(), c.vocabSize, c.hiddenSize, format), int8Weights);
  }
  if (fused) {
    const head = c.tieWordEmbeddings ? embedTokens : floatMatrix(g, "lm_head", [c.vocabSize, c.hiddenSize], weights, "lm_head.weight", true);
    return g.op1("FusedMatMul", [hidden, head], { domain: "com.microsoft", attrs: { transB: attr.int(1) } });
  }
  const headName = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const transposed = transposeInto(requireWeight(weights, headName), c.vocabSize, c.hiddenSize, new Float32Array(c.vocabSize * c.hiddenSize));
  return g.matmul(hidden, g.initializer("lm_head", "float32", [c.hiddenSize, c.vocabSize], transposed));
}
