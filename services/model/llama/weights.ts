/** The model weights the Llama graph builders read, by Hugging Face tensor name. */
import type { FileBytes } from "../graph/ir.ts";

export interface DecoderWeights {
  has(name: string): boolean;
  getF32(name: string): Float32Array;
  /** Where a float32 tensor lies in a file, when the weights may be served in place (see safetensors.ts `WeightStore.locate`). */
  locate?(name: string): FileBytes;
}

/**
 * Tensors (or stacks of projections) at least this large are served in place when the weights allow
 * it (`locate`); smaller ones are copied into the graph: copying them costs nothing, and one product of
 * stacked projections beats several small ones (stories260k decode: about 2,400 against 1,900 tokens/s).
 */
export const IN_PLACE_MIN_BYTES = 1 << 20;

/** Where the tensors `names` lie, when the weights allow serving them in place and together they reach IN_PLACE_MIN_BYTES. */
export function locateInPlace(weights: DecoderWeights, names: readonly string[]): FileBytes[] | undefined {
  if (!weights.locate) return undefined;
  const files = names.map((name) => {
    if (!weights.has(name)) throw new Error(`missing tensor "${name}" in the model weights`);
    return weights.locate!(name);
  });
  return files.reduce((n, f) => n + f.byteLength, 0) >= IN_PLACE_MIN_BYTES ? files : undefined;
}

/** The named tensor as float32; a missing tensor is an error naming it. */
export function requireWeight(weights: DecoderWeights, name: string): Float32Array {
  if (!weights.has(name)) throw new Error(`missing tensor "${name}" in the model weights`);
  return weights.getF32(name);
}

const derivedTensors = new WeakMap<DecoderWeights, Map<string, object>>();

/**
 * A view of `weights` under which `derived` tensors (packed, transposed, quantized) are made once and
 * shared by every graph built from the view: the compile cache builds all variants of a model from
 * one view, so each is derived once and is the same array in each graph (written once). The
 * tensors live as long as the view; plain weights objects derive afresh each time. The source tensors
 * are not mutated by the builders, so sharing them too is safe.
 */
export function shareDerived<W extends DecoderWeights>(weights: W): W {
  // A tensor read while an earlier read of it is still alive (a graph's initializer waiting to be
  // written) is that same array: read once per compile, and the weight file sees one array, not equal copies.
  const read = new Map<string, WeakRef<Float32Array>>();
  const getF32 = (name: string) => {
    let tensor = read.get(name)?.deref();
    if (!tensor) read.set(name, new WeakRef((tensor = weights.getF32(name))));
    return tensor;
  };
  const view = Object.assign(Object.create(null) as object, weights, { has: (name: string) => weights.has(name), getF32 }) as W;
  derivedTensors.set(view, new Map());
  return view;
}

/** The tensor `key` derived from `weights` by `make`, made once per `shareDerived` view. */
export function derived<T extends object>(weights: DecoderWeights, key: string, make: () => T): T {
  const cache = derivedTensors.get(weights);
  if (!cache) return make();
  let tensor = cache.get(key) as T | undefined;
  if (!tensor) cache.set(key, (tensor = make()));
  return tensor;
}
