/**
 * Quantized base weights (SWITCHYARD_WEIGHTS=f32|int8|int4): the quantization math, pure TypeScript.
 *
 * A linear weight W [out, in] (Hugging Face layout, one row per output channel) is cut into blocks of
 * `blockSize` consecutive inputs per row, each block with one float scale, symmetric (no zero point):
 *   int8: one block per row (per output channel): q = round(x / d), d = max|x| / 127, q in [-127, 127]
 *   int4: blocks of 32, llama.cpp's Q4_0 rule: d = (the value of largest magnitude) / -8,
 *         q = clamp(round(x / d), -8, 7), so the largest value is exact and 16 levels are used
 * Stored as uint8 [out, blocks, blockSize·bits/8], each value offset by 2^(bits-1) (128 or 8), two 4-bit
 * values a byte (the even index in the low nibble), a row's last int4 block padded with the offset (0).
 * That is com.microsoft MatMulNBits's B input with its default zero point; int8's rows, transposed, are
 * DynamicQuantizeMatMul's uint8 B with zero point 128 (services/model/llama/projection.ts says why those
 * ops). Scales are float32 [out, blocks]. Quantization is per row, so quantizing stacked rows equals
 * stacking quantized rows: the packed q/k/v and gate/up projections are one matrix here.
 *
 * `dequantize` gives back the float weights the quantized graph computes with (for the reference
 * forward in the tests and the bench's error table).
 */

export type WeightFormat = "f32" | "int8" | "int4";
export const WEIGHT_FORMATS: readonly WeightFormat[] = ["f32", "int8", "int4"];

/** int4's block: 32 values, as llama.cpp's Q4_0 and onnxruntime's default. */
export const INT4_BLOCK = 32;

export interface QuantizedMatrix {
  bits: 4 | 8;
  /** Output channels (MatMulNBits's N). */
  rows: number;
  /** Inputs per row (MatMulNBits's K). */
  cols: number;
  /** int8: `cols` (one block per row); int4: 32. */
  blockSize: number;
  /** uint8 [rows, blocks, blockSize·bits/8], values + 2^(bits-1). */
  packed: Uint8Array;
  /** float32 [rows, blocks]. */
  scales: Float32Array;
}

export function isWeightFormat(value: string): value is WeightFormat {
  return (WEIGHT_FORMATS as readonly string[]).includes(value);
}

export const blocksPerRow = (m: Pick<QuantizedMatrix, "cols" | "blockSize">): number => Math.ceil(m.cols / m.blockSize);

/** W [rows, cols] row-major -> its int8 or int4 form. */
export function quantize(weights: Float32Array, rows: number, cols: number, format: Exclude<WeightFormat, "f32">): QuantizedMatrix {
  if (weights.length !== rows * cols) throw new Error(`quantize: ${weights.length} values are not [${rows}, ${cols}]`);
  const bits = format === "int8" ? 8 : 4;
  const blockSize = bits === 8 ? cols : INT4_BLOCK;
  const blocks = Math.ceil(cols / blockSize);
  const blob = (blockSize * bits) / 8;
  const zero = 1 << (bits - 1);
  const packed = new Uint8Array(rows * blocks * blob);
  const scales = new Float32Array(rows * blocks);
  if (bits === 4) packed.fill(zero | (zero << 4));
  else packed.fill(zero);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = r * cols + b * blockSize;
      const end = r * cols + Math.min(cols, (b + 1) * blockSize);
      const d = blockScale(weights, start, end, bits);
      scales[r * blocks + b] = d;
      const inverse = d === 0 ? 0 : 1 / d;
      const at = (r * blocks + b) * blob;
      for (let i = start; i < end; i++) {
        const j = i - start;
        const q = bits === 8 ? clamp(Math.round(weights[i] * inverse), -127, 127) : clamp(Math.round(weights[i] * inverse), -8, 7);
        if (bits === 8) packed[at + j] = q + zero;
        else {
          const byte = at + (j >> 1);
          packed[byte] = j & 1 ? (packed[byte] & 0x0f) | ((q + zero) << 4) : (packed[byte] & 0xf0) | (q + zero);
        }
      }
    }
  }
  return { bits, rows, cols, blockSize, packed, scales };
}

/** The float weights [rows, cols] a quantized matrix stands for: scale · (stored value - zero point). */
export function dequantize(m: QuantizedMatrix): Float32Array {
  const { rows, cols, blockSize, bits } = m;
  const blocks = blocksPerRow(m);
  const blob = (blockSize * bits) / 8;
  const zero = 1 << (bits - 1);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / blockSize);
      const j = c - b * blockSize;
      const at = (r * blocks + b) * blob;
      const stored = bits === 8 ? m.packed[at + j] : (m.packed[at + (j >> 1)] >> ((j & 1) * 4)) & 0x0f;
      out[r * cols + c] = m.scales[r * blocks + b] * (stored - zero);
    }
  }
  return out;
}

/** The weights quantization changes: every layer's q/k/v/o/gate/up/down projection and the output head. */
export function isQuantizedWeight(name: string): boolean {
  return /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/.test(name) || name === "lm_head.weight";
}

/**
 * A weight lookup that answers what a `format` graph computes with: the quantized weights dequantized,
 * the others (embeddings, norms, biases) as they are. A tied model's head is asked for as "lm_head.weight"
 * (it is the embedding matrix, quantized as a head; the embedding table itself stays float).
 */
export function dequantizedLookup(
  lookup: (name: string) => Float32Array,
  shapeOf: (name: string) => readonly number[],
  format: WeightFormat,
  tied: boolean,
): (name: string) => Float32Array {
  return (name) => {
    const source = name === "lm_head.weight" && tied ? "model.embed_tokens.weight" : name;
    const weights = lookup(source);
    if (format === "f32" || !isQuantizedWeight(name)) return weights;
    const [rows, cols] = shapeOf(source);
    return dequantize(quantize(weights, rows!, cols!, format));
  };
}

/** d for one block: int8 max|x| / 127; int4 the value of largest magnitude / -8 (Q4_0); 0 for an all-zero block. */
function blockScale(weights: Float32Array, start: number, end: number, bits: 4 | 8): number {
  let extreme = 0;
  for (let i = start; i < end; i++) if (Math.abs(weights[i]) > Math.abs(extreme)) extreme = weights[i];
  return bits === 8 ? Math.abs(extreme) / 127 : extreme / -8;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
