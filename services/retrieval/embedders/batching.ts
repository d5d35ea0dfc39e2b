import * as ort from "onnxruntime-node";

/** Token sequences padded to one length, as the tensors encoders take. */
export interface PaddedBatch {
  size: number;
  length: number;
  ids: ort.Tensor;
  /** 1 for tokens, 0 for padding, as float32 and as int64. */
  maskFloat: ort.Tensor;
  maskInt: ort.Tensor;
  /** All zeros (BERT token_type_ids). */
  typeIds: ort.Tensor;
  mask: Float32Array;
}

export function padBatch(sequences: number[][], padId: number): PaddedBatch {
  const size = sequences.length;
  const length = Math.max(1, ...sequences.map((s) => s.length));
  const ids = new BigInt64Array(size * length).fill(BigInt(padId));
  const mask = new Float32Array(size * length);
  sequences.forEach((seq, b) =>
    seq.forEach((id, t) => {
      ids[b * length + t] = BigInt(id);
      mask[b * length + t] = 1;
    }),
  );
  const dims = [size, length];
  return {
    size,
    length,
    ids: new ort.Tensor("int64", ids, dims),
    maskFloat: new ort.Tensor("float32", mask, dims),
    maskInt: new ort.Tensor("int64", BigInt64Array.from(mask, (m) => BigInt(m)), dims),
    typeIds: new ort.Tensor("int64", new BigInt64Array(size * length), dims),
    mask,
  };
}

/**
 * Runs `encode` over batches of similar length (sorted, so little padding) and returns the
 * vectors in input order.
 */
export async function encodeInBatches(
  sequences: number[][],
  batchSize: number,
  padId: number,
  encode: (batch: PaddedBatch) => Promise<Float32Array[]>,
): Promise<Float32Array[]> {
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[a].length - sequences[b].length);
  const out: Float32Array[] = new Array(sequences.length);
  for (let i = 0; i < order.length; i += batchSize) {
    const slice = order.slice(i, i + batchSize);
    const vectors = await encode(padBatch(slice.map((j) => sequences[j]), padId));
    slice.forEach((j, k) => (out[j] = vectors[k]));
  }
  return out;
}

/** Splits a [rows, dim] float tensor into one vector per row. */
export function rows(tensor: ort.Tensor): Float32Array[] {
  const [n, dim] = tensor.dims as number[];
  const data = tensor.data as Float32Array;
  return Array.from({ length: n }, (_, i) => data.slice(i * dim, (i + 1) * dim));
}

/**
 * One intra-op thread unless asked: an embedder scales by worker threads (worker-pool.ts splits a
 * call across them), which share nothing. onnxruntime's own default (a thread per core, spinning
 * while it waits for work) burnt 2–3× the CPU time of the model itself on a shared 2-core machine;
 * when more threads are asked for, they sleep instead of spinning.
 */
export function sessionOptions(intraOpThreads = 1): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: "all",
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    ...(intraOpThreads > 1 ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
  };
}
