/**
 * Token sampler: penalties, temperature, top-k, top-p, min-p and a seeded PRNG, on Float32Array
 * logits without sorting the vocabulary (a bounded heap for top-k, float-bit buckets for top-p).
 *
 * One sampler per sequence: it counts the tokens it has returned, and those counts are the
 * "generated" tokens that the OpenAI-style frequency and presence penalties apply to. The
 * Hugging Face-style repetition penalty applies to every token in `history` (prompt + generated).
 *
 * Logprobs (chosen and top alternatives) are the log-softmax of the raw logits, before penalties,
 * temperature and truncation, so they describe the model rather than the sampling settings.
 */
import type { SamplingParams } from "../../ports/index.ts";

export interface TokenChoice {
  token: number;
  logprob: number;
}

export interface SampleResult {
  token: number;
  /** The chosen token's logprob; undefined when logprobs are off (spares a log-sum-exp per token). */
  logprob?: number;
  /** The `params.logprobs` most likely tokens by raw logprob (empty when logprobs are off). */
  top: TokenChoice[];
}

export interface Sampler {
  sample(logits: Float32Array, history: ArrayLike<number>): SampleResult;
}

export type SamplerParams = Pick<
  SamplingParams,
  "temperature" | "topK" | "topP" | "minP" | "repetitionPenalty" | "frequencyPenalty" | "presencePenalty" | "seed" | "logprobs"
>;

/** mulberry32: a small, fast 32-bit PRNG; uniform floats in [0, 1). */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Indices of the k largest values, largest first (ties: lower index first). O(n log k). */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const n = values.length;
  k = Math.min(k, n);
  if (k <= 0) return [];
  // Min-heap on (value, -index): the root is the weakest of the current best k.
  const heap: number[] = [];
  const weaker = (a: number, b: number) => values[a] < values[b] || (values[a] === values[b] && a > b);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && weaker(heap[l], heap[m])) m = l;
      if (r < heap.length && weaker(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let i = 0; i < n; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0; ) {
        const p = (c - 1) >> 1;
        if (!weaker(heap[c], heap[p])) break;
        [heap[c], heap[p]] = [heap[p], heap[c]];
        c = p;
      }
    } else if (weaker(heap[0], i)) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => (weaker(a, b) ? 1 : weaker(b, a) ? -1 : 0));
}

export function logSumExp(values: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp(values[i] - max);
  return max + Math.log(sum);
}

function argmax(values: Float32Array): number {
  let best = 0;
  let bestValue = values[0];
  for (let i = 1; i < values.length; i++) {
    if (values[i] > bestValue) {
      bestValue = values[i];
      best = i;
    }
  }
  return best;
}

function validate(p: SamplerParams): void {
  const problems: string[] = [];
  if (!(p.temperature >= 0)) problems.push(`temperature must be >= 0 (got ${p.temperature})`);
  if (!(p.topP > 0 && p.topP <= 1)) problems.push(`top_p must be in (0, 1] (got ${p.topP})`);
  if (!(p.minP >= 0 && p.minP <= 1)) problems.push(`min_p must be in [0, 1] (got ${p.minP})`);
  if (!(p.repetitionPenalty > 0)) problems.push(`repetition_penalty must be > 0 (got ${p.repetitionPenalty})`);
  if (!Number.isInteger(p.topK)) problems.push(`top_k must be an integer (got ${p.topK})`);
  if (problems.length) throw new Error(`invalid sampling parameters: ${problems.join("; ")}`);
}

/** Logits after the repetition (history) and frequency/presence (generated) penalties. */
function penalize(logits: Float32Array, history: ArrayLike<number>, generated: Map<number, number>, p: SamplerParams): Float32Array {
  const hasRepetition = p.repetitionPenalty !== 1 && history.length > 0;
  if (!hasRepetition && ((p.frequencyPenalty === 0 && p.presencePenalty === 0) || generated.size === 0)) return logits;
  const scores = logits.slice();
  if (hasRepetition) {
    for (const token of new Set(Array.from(history))) {
      const s = scores[token];
      scores[token] = s > 0 ? s / p.repetitionPenalty : s * p.repetitionPenalty;
    }
  }
  for (const [token, count] of generated) scores[token] -= p.frequencyPenalty * count + p.presencePenalty;
  return scores;
}

/** Float-bit buckets for `nucleus`: 8 per power of two over the top 40 octaves below 1, and one for the rest. */
const BUCKET_SHIFT = 20;
const TOP_BUCKET = 0x3f800000 >>> BUCKET_SHIFT; // the bucket of 1.0, the largest weight
const LOWEST_BUCKET = TOP_BUCKET - 40 * 8;

/**
 * The smallest set of most likely tokens whose weight reaches `topP` of the total, found without
 * sorting the vocabulary: weights are bucketed by their float bit pattern (monotone for positive
 * floats), and only the bucket where the mass crosses the threshold is sorted. Tiny weights share
 * one bucket (sorted whole if the boundary ever falls there), which keeps the histogram small.
 */
function nucleus(weights: Float32Array, total: number, topP: number, bucketMass: Float64Array): number[] {
  const bits = new Uint32Array(weights.buffer, weights.byteOffset, weights.length);
  bucketMass.fill(0);
  for (let i = 0; i < bits.length; i++) bucketMass[bucketOf(bits[i])] += weights[i];
  const target = topP * total;
  let above = 0;
  let boundary = bucketMass.length - 1;
  while (boundary > 0 && above + bucketMass[boundary] < target) above += bucketMass[boundary--];
  const kept: number[] = [];
  const edge: number[] = [];
  for (let i = 0; i < bits.length; i++) {
    const bucket = bucketOf(bits[i]);
    if (bucket > boundary) kept.push(i);
    else if (bucket === boundary) edge.push(i);
  }
  edge.sort((a, b) => weights[b] - weights[a] || a - b);
  for (const i of edge) {
    kept.push(i);
    above += weights[i];
    if (above >= target) break;
  }
  return kept;
}

function bucketOf(bits: number): number {
  const bucket = (bits >>> BUCKET_SHIFT) - LOWEST_BUCKET;
  return bucket > 0 ? bucket : 0;
}

/** The candidate tokens after top-k and top-p; undefined means "every token". */
function truncate(weights: Float32Array, total: number, topK: number, topP: number, bucketMass: Float64Array): number[] | undefined {
  if (topK > 0 && topK < weights.length) {
    const candidates = topIndices(weights, topK);
    if (topP >= 1) return candidates;
    const target = topP * candidates.reduce((s, i) => s + weights[i], 0);
    let cumulative = 0;
    const n = candidates.findIndex((i) => (cumulative += weights[i]) >= target);
    return candidates.slice(0, n < 0 ? candidates.length : n + 1);
  }
  return topP < 1 ? nucleus(weights, total, topP, bucketMass) : undefined;
}

/** Draws a token with probability proportional to its weight, among candidates at or above `floor`. */
function draw(weights: Float32Array, candidates: number[] | undefined, floor: number, random: () => number): number {
  if (!candidates) {
    let sum = 0;
    for (let i = 0; i < weights.length; i++) if (weights[i] >= floor) sum += weights[i];
    let u = random() * sum;
    let last = 0;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i] < floor) continue;
      last = i;
      if ((u -= weights[i]) < 0) return i;
    }
    return last; // float rounding left u at ~0
  }
  let sum = 0;
  for (const i of candidates) if (weights[i] >= floor) sum += weights[i];
  let u = random() * sum;
  let last = candidates[0];
  for (const i of candidates) {
    if (weights[i] < floor) continue;
    last = i;
    if ((u -= weights[i]) < 0) return i;
  }
  return last;
}

export function createSampler(params: SamplerParams, vocabSize: number): Sampler {
  validate(params);
  const random = createRandom(params.seed ?? (Math.random() * 2 ** 32) >>> 0);
  const generated = new Map<number, number>();
  const greedy = params.temperature === 0 || params.topK === 1;
  const wantLogprobs = params.logprobs !== undefined;
  const weights = new Float32Array(vocabSize);
  const bucketMass = new Float64Array(TOP_BUCKET - LOWEST_BUCKET + 1);

  /** Picks a token; also returns log(sum(exp(scores))) when that came for free. */
  const choose = (scores: Float32Array): { token: number; logNorm?: number } => {
    if (greedy) return { token: argmax(scores) };
    const max = scores[argmax(scores)];
    const temperature = params.temperature;
    let total = 0;
    for (let i = 0; i < vocabSize; i++) total += weights[i] = Math.exp((scores[i] - max) / temperature);
    const candidates = truncate(weights, total, params.topK, params.topP, bucketMass);
    // The most likely token has weight 1, so min_p's threshold is min_p itself.
    const token = draw(weights, candidates, params.minP, random);
    return { token, logNorm: temperature === 1 ? max + Math.log(total) : undefined };
  };

  return {
    sample(logits, history) {
      if (logits.length !== vocabSize) throw new Error(`expected ${vocabSize} logits, got ${logits.length}`);
      const scores = penalize(logits, history, generated, params);
      const { token, logNorm } = choose(scores);
      generated.set(token, (generated.get(token) ?? 0) + 1);
      if (!wantLogprobs) return { token, top: [] };
      const norm = scores === logits && logNorm !== undefined ? logNorm : logSumExp(logits);
      const top = params.logprobs ? topIndices(logits, params.logprobs).map((t) => ({ token: t, logprob: logits[t] - norm })) : [];
      return { token, logprob: logits[token] - norm, top };
    },
  };
}
