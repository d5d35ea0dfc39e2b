/** The model weights the Llama graph builders read, by Hugging Face tensor name. */

export interface DecoderWeights {
  has(name: string): boolean;
  getF32(name: string): Float32Array;
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
