/**
 * The statistics of an evaluation report, pure and seeded (the same inputs and seed give the same
 * numbers on every runtime):
 * - `mulberry32`: the PRNG (32-bit state; uniform floats in [0, 1)).
 * - `bootstrapMean`: the mean with a percentile bootstrap interval. Each resample draws n indices
 *   as `floor(rng() * n)`, in order; the interval is the (α/2, 1 − α/2) quantiles of the resampled
 *   means by `quantile` (linear interpolation, numpy's default).
 * - `pairedTest`: the paired sign-flip (permutation) test of the mean difference a − b, two-sided:
 *   under H0 each pair's difference is equally likely to have either sign. Exact over all 2^n sign
 *   patterns for n ≤ 16; otherwise Monte Carlo with p = (1 + #{|mean*| ≥ |mean|}) / (1 + R), each
 *   draw of the PRNG giving the signs of 32 pairs (its 32 bits, lowest first).
 *   Ties count as extreme, so p is never below 1/2^n (exact) or 1/(R+1).
 */

export type Rng = () => number;

/** Tommy Ettinger's mulberry32. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mean(values: readonly number[]): number {
  let sum = 0;
  for (const v of values) sum += v;
  return values.length === 0 ? NaN : sum / values.length;
}

/** The q-quantile (0 ≤ q ≤ 1) by linear interpolation between order statistics (numpy's "linear"). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Interval {
  mean: number;
  low: number;
  high: number;
}

export interface BootstrapOptions {
  seed: number;
  resamples?: number;
  /** Confidence level, default 0.95. */
  level?: number;
}

/** The resampled means of a percentile bootstrap (see the header for the draw order). */
export function bootstrapMeans(values: readonly number[], rng: Rng, resamples: number): number[] {
  const n = values.length;
  const means = new Array<number>(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(rng() * n)]!;
    means[r] = sum / n;
  }
  return means;
}

/** The mean and its percentile-bootstrap interval; an empty sample gives NaNs, one value a zero-width interval. */
export function bootstrapMean(values: readonly number[], options: BootstrapOptions): Interval {
  const m = mean(values);
  if (values.length === 0) return { mean: NaN, low: NaN, high: NaN };
  const alpha = 1 - (options.level ?? 0.95);
  const means = bootstrapMeans(values, mulberry32(options.seed), options.resamples ?? 2000);
  return { mean: m, low: quantile(means, alpha / 2), high: quantile(means, 1 - alpha / 2) };
}

export interface PairedTest {
  /** Mean of a − b. */
  meanDifference: number;
  /** Two-sided p-value of the sign-flip test. */
  p: number;
  /** Whether the p-value was computed over every sign pattern. */
  exact: boolean;
}

const EXACT_LIMIT = 16;

/** The paired sign-flip test of a − b (equal lengths). */
export function pairedTest(a: readonly number[], b: readonly number[], options: { seed: number; resamples?: number }): PairedTest {
  if (a.length !== b.length) throw new RangeError("paired samples must have the same length");
  const d = a.map((x, i) => x - b[i]!);
  const n = d.length;
  const observed = Math.abs(mean(d));
  if (n === 0) return { meanDifference: NaN, p: NaN, exact: true };
  // Round-off: a flipped sum equal to the observed one in exact arithmetic must count as extreme.
  const tolerance = 1e-12 * Math.max(1, observed);
  const extreme = (sum: number) => Math.abs(sum / n) >= observed - tolerance;
  if (n <= EXACT_LIMIT) {
    let count = 0;
    const patterns = 2 ** n;
    for (let mask = 0; mask < patterns; mask++) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += mask & (1 << i) ? -d[i]! : d[i]!;
      if (extreme(sum)) count++;
    }
    return { meanDifference: mean(d), p: count / patterns, exact: true };
  }
  const rng = mulberry32(options.seed);
  const resamples = options.resamples ?? 10_000;
  let count = 0;
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    let bits = 0;
    for (let i = 0; i < n; i++) {
      // mulberry32's outputs are whole 32-bit numbers over 2^32: one draw gives 32 fair signs.
      if (i % 32 === 0) bits = (rng() * 4294967296) >>> 0;
      sum += bits & 1 ? -d[i]! : d[i]!;
      bits >>>= 1;
    }
    if (extreme(sum)) count++;
  }
  return { meanDifference: mean(d), p: (count + 1) / (resamples + 1), exact: false };
}
