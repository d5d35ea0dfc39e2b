/**
 * The linear layers of a decoder layer. Projections that read the same input (q/k/v, gate/up) are
 * packed into one initializer and one product ([Σout, in] under FusedMatMul in the serving graphs,
 * [in, Σout] under MatMul in training ones); a LoRA branch, when given, adds its delta
 * for the same targets. Standard ONNX ops only, except quantized weights (`format` int8/int4,
 * services/model/quantize.ts): the packed rows quantized once and multiplied by a com.microsoft op
 * (`quantizedMatMul`); the LoRA branch stays float on top.
 */
import type { DecoderConfig } from "../config.ts";
import { attr, type Graph, type Value } from "../graph/ir.ts";
import { loraModuleName, projectionShape, type LoraTarget } from "../lora-layout.ts";
import { blocksPerRow, quantize, type QuantizedMatrix, type WeightFormat } from "../quantize.ts";
import { derived, locateInPlace, requireWeight, type DecoderWeights } from "./weights.ts";

export interface ProjectionShape {
  in: number;
  out: number;
}

/** The LoRA delta [B, T, Σout] of `targets` (in order, concatenated) for x [B, T, in] in `layer`. */
export type LoraBranch = (layer: number, x: Value, targets: readonly LoraTarget[], shapes: readonly ProjectionShape[]) => Value;

/** x [B, T, in] -> x·W (+ bias) (+ LoRA) of one layer's `targets`, concatenated along the last axis. */
export type LayerLinear = (x: Value, targets: readonly LoraTarget[], withBias: boolean) => Value;

/**
 * The packed projections of decoder layer `layer`. With `fused` (the serving graphs), F32 weights keep
 * Hugging Face's [out, in] layout, stacked by rows, under com.microsoft FusedMatMul (transB): nothing is
 * transposed at compile time, and with prepacking off (the engine's mapped weights) onnxruntime
 * multiplies several rows by a transposed matrix faster than by a plain one (2048×11264, one thread:
 * 8 rows 21 against 39 ms, 32 rows 36 against 55 ms; one row alike). Weights served in place
 * (`locateInPlace`) are not stacked but multiplied one by one where they lie in the source file, their
 * products concatenated (TinyLlama shapes decode as fast when the file's tensors are 64-byte aligned;
 * Hugging Face's 8-byte alignment costs batch-1 decode about 12%, see the README). Without `fused`
 * (training graphs, which differentiate plain MatMul), [in, Σout] under MatMul.
 */
export function layerLinear(g: Graph, c: DecoderConfig, weights: DecoderWeights, layer: number, lora?: LoraBranch, format: WeightFormat = "f32", fused = false, int8Weights: Int8Weights = "uint8"): LayerLinear {
  return (x, targets, withBias) => {
    const shapes = targets.map((t) => projectionShape(c, t));
    const outTotal = shapes.reduce((a, s) => a + s.out, 0);
    const name = `layers.${layer}.${targets.map((t) => t.replace("_proj", "")).join("")}`;
    const matrices = () => targets.map((t) => requireWeight(weights, `${loraModuleName(layer, t)}.weight`));
    const stacked = () => {
      const m = matrices();
      return m.length === 1 ? m[0]! : concatenated(m);
    };
    const transB = (w: Value) => g.op1("FusedMatMul", [x, w], { domain: "com.microsoft", attrs: { transB: attr.int(1) } });
    const inPlace = fused && format === "f32" ? locateInPlace(weights, targets.map((t) => `${loraModuleName(layer, t)}.weight`)) : undefined;
    let y =
      format !== "f32"
        ? quantizedMatMul(g, x, name, weights, () => quantize(stacked(), outTotal, shapes[0].in, format), int8Weights)
        : inPlace
          ? concatLast(g, inPlace.map((file, k) => transB(g.initializer(`${name}.${k}`, "float32", [shapes[k].out, shapes[k].in], file))))
          : fused
            ? transB(g.initializer(name, "float32", [outTotal, shapes[0].in], derived(weights, `${name}.rows`, stacked)))
            : g.matmul(x, g.initializer(name, "float32", [shapes[0].in, outTotal], derived(weights, name, () => packTransposed(matrices(), shapes))));
    if (withBias) {
      const bias = concatenated(targets.map((t) => requireWeight(weights, `${loraModuleName(layer, t)}.bias`)));
      y = g.add(y, g.initializer(`${name}.bias`, "float32", [outTotal], bias));
    }
    if (lora) y = g.add(y, lora(layer, x, targets, shapes));
    return y;
  };
}

function concatLast(g: Graph, parts: Value[]): Value {
  return parts.length === 1 ? parts[0]! : g.concat(parts, -1);
}

/** How int8 weights are stored (see DecoderOptions `int8Weights`). */
export type Int8Weights = "uint8" | "int8";

/**
 * x [.., K] · Wᵀ for a quantized W [N, K], with the ops measured fastest for batch-1 decode on this
 * machine's CPUs (x86, AVX2 without VNNI; TinyLlama's 2048×11264 gate/up and 5632×2048 down):
 * - int8: com.microsoft DynamicQuantizeMatMul, W as uint8 with zero point 128 per output column
 *   (onnxruntime's u8u8 kernel: exact; int8 weights take the u8s8 kernel, whose int16 pair sums saturate
 *   on AVX2, see services/retrieval/embedders/use-lite.ts INT8_WEIGHT_MAX). Batch 1: 5-6 ms against
 *   MatMulNBits bits 8 (block ≤ 256, its limit) 6-12 ms and F32 17-33 ms; 32 rows: 22-30 against 57-90 ms.
 *   With VNNI (an AMD EPYC with AVX-512, 2048×11264) the u8s8 kernel accumulates in int32, exact too, and
 *   is faster: `int8Weights: "int8"` stores W as int8, zero point 0 (batch 1: 1.55 against 2.23 ms; 32
 *   rows: 6.2 against 11.1 ms).
 * - int4: MatMulNBits bits 4, block 32, accuracy_level 4 (activations quantized to int8 per block, int8
 *   dot products): 2-7 ms against 16-23 ms at accuracy_level 0 (float compute).
 * Both quantize the activations on the fly, so they differ from x·dequantize(W) by about one activation
 * rounding step per block (relative 1e-3 to 1e-2 of a product, see tests/services/model/quantized-decoder.test.ts).
 */
export function quantizedMatMul(g: Graph, x: Value, name: string, from: DecoderWeights, quantized: () => QuantizedMatrix, int8Weights: Int8Weights = "uint8"): Value {
  // Made once per compile (`derived`), not once per graph variant.
  const q = derived(from, `${name}.quantized`, quantized);
  const shape = x.shape && [...x.shape.slice(0, -1), q.rows];
  if (q.bits === 8) {
    // W transposed to [K, N], its values + 128 as uint8; stored as int8 the same values have their top bit flipped.
    const transposed = () => transposeInto(q.packed, q.rows, q.cols, new Uint8Array(q.packed.length));
    const scales = g.initializer(`${name}.scales`, "float32", [q.rows], q.scales);
    const [weights, zeroPoints] =
      int8Weights === "int8"
        ? [g.initializer(`${name}.s8`, "int8", [q.cols, q.rows], derived(from, `${name}.s8`, () => flipTopBits(transposed()))), g.initializer(`${name}.zero`, "int8", [q.rows], new Int8Array(q.rows))]
        : [g.initializer(`${name}.u8`, "uint8", [q.cols, q.rows], derived(from, `${name}.u8`, transposed)), g.initializer(`${name}.zero`, "uint8", [q.rows], new Uint8Array(q.rows).fill(128))];
    return g.op1("DynamicQuantizeMatMul", [x, weights, scales, zeroPoints, null], { domain: "com.microsoft", dtype: "float32", shape });
  }
  const blocks = blocksPerRow(q);
  const b = g.initializer(`${name}.q4`, "uint8", [q.rows, blocks, (q.blockSize * q.bits) / 8], q.packed);
  const scales = g.initializer(`${name}.scales`, "float32", [q.rows * blocks], q.scales);
  return g.op1("MatMulNBits", [x, b, scales], {
    domain: "com.microsoft",
    attrs: { K: attr.int(q.cols), N: attr.int(q.rows), bits: attr.int(q.bits), block_size: attr.int(q.blockSize), accuracy_level: attr.int(4) },
    dtype: "float32",
    shape,
  });
}

/** `out`'s bytes with their top bits flipped, in place, viewed as int8 (four bytes at a time: these are hundreds of MB). */
function flipTopBits(out: Uint8Array): Int8Array {
  const words = new Uint32Array(out.buffer, 0, out.length >>> 2);
  for (let i = 0; i < words.length; i++) words[i] ^= 0x80808080;
  for (let i = words.length * 4; i < out.length; i++) out[i] ^= 0x80;
  return new Int8Array(out.buffer);
}

/** Tile edge of the transpose: tiles of both matrices stay in cache (a plain loop's strided writes miss on every element). */
const TILE = 32;

/**
 * Writes `m` [rows, cols] (row-major) transposed into `out`, whose rows are `stride` long, from
 * column `column` on: [cols, rows] when stride = rows and column = 0.
 */
export function transposeInto<T extends Float32Array | Uint8Array>(m: T, rows: number, cols: number, out: T, stride = rows, column = 0): T {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let c = c0; c < c1; c++) {
        const at = c * stride + column;
        for (let r = r0; r < r1; r++) out[at + r] = m[r * cols + c]!;
      }
    }
  }
  return out;
}

/** Hugging Face [out, in] weights (same `in`) -> one row-major [in, Σout] matrix. */
function packTransposed(weights: Float32Array[], shapes: readonly ProjectionShape[]): Float32Array {
  const inSize = shapes[0].in;
  const outTotal = shapes.reduce((a, s) => a + s.out, 0);
  const packed = new Float32Array(inSize * outTotal);
  let column = 0;
  weights.forEach((w, k) => {
    transposeInto(w, shapes[k].out, inSize, packed, outTotal, column);
    column += shapes[k].out;
  });
  return packed;
}

function concatenated(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
