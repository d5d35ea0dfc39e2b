/** The trainer benchmarks' case: `batch` random token sequences of `seq` tokens after BOS, loss on all but the first 32 positions. */
import { createRandom } from "../services/inference/sampler.ts";
import type { EncodedExample } from "../trainer/dataset.ts";

export const SEQ = 256;
export const BATCH = 8;

export function randomExamples(vocab: number, seed: number, seq = SEQ, batch = BATCH): EncodedExample[] {
  const random = createRandom(seed);
  return Array.from({ length: batch }, () => {
    const ids = [1, ...Array.from({ length: seq }, () => 3 + Math.floor(random() * (vocab - 3)))];
    return { ids, weights: ids.map((_, t) => (t >= 32 ? 1 : 0)), truncated: false };
  });
}
