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
