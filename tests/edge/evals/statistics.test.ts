import { describe, expect, it } from "vitest";
import { bootstrapMean, mean, mulberry32, pairedTest, quantile } from "../../../edge/evals/statistics.ts";

/** The percentile bootstrap written out independently: n draws per resample, sort, interpolate. */
function referenceBootstrap(values: number[], seed: number, resamples: number, level: number) {
  const rng = mulberry32(seed);
  const means: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < values.length; i++) s += values[Math.floor(rng() * values.length)]!;
    means.push(s / values.length);
  }
  means.sort((a, b) => a - b);
  const at = (q: number) => {
    const h = (means.length - 1) * q;
    return means[Math.floor(h)]! + (h - Math.floor(h)) * (means[Math.ceil(h)]! - means[Math.floor(h)]!);
  };
  return [at((1 - level) / 2), at(1 - (1 - level) / 2)];
}

describe("statistics", () => {
  it("quantile interpolates as numpy's default does", () => {
    // np.percentile([1, 2, 3, 4], [25, 50, 90]) == [1.75, 2.5, 3.7]
    expect(quantile([4, 1, 3, 2], 0.25)).toBeCloseTo(1.75, 12);
    expect(quantile([4, 1, 3, 2], 0.5)).toBeCloseTo(2.5, 12);
    expect(quantile([4, 1, 3, 2], 0.9)).toBeCloseTo(3.7, 12);
  });

  it("the bootstrap interval of a known sample matches an independent computation with the same seed", () => {
    const sample = [0.12, 0.55, 0.31, 0.9, 0.05, 0.47, 0.66, 0.2, 0.38, 0.81, 0.14, 0.59];
    const got = bootstrapMean(sample, { seed: 7, resamples: 3000, level: 0.95 });
    const [low, high] = referenceBootstrap(sample, 7, 3000, 0.95);
    expect(got.mean).toBeCloseTo(mean(sample), 12);
    expect(got.low).toBeCloseTo(low!, 12);
    expect(got.high).toBeCloseTo(high!, 12);
    expect(got.low).toBeLessThan(got.mean);
    expect(got.high).toBeGreaterThan(got.mean);
    // Same seed, same interval; another seed, a (slightly) different one.
    expect(bootstrapMean(sample, { seed: 7, resamples: 3000 })).toEqual(got);
    expect(bootstrapMean(sample, { seed: 8, resamples: 3000 }).low).not.toBe(got.low);
  });

  it("on a large sample the bootstrap interval approaches the normal one, mean ± 1.96 σ/√n", () => {
    const sample = Array.from({ length: 400 }, (_, i) => ((i * 37) % 101) / 100);
    const m = mean(sample);
    const sd = Math.sqrt(sample.reduce((s, v) => s + (v - m) ** 2, 0) / sample.length);
    const half = (1.96 * sd) / Math.sqrt(sample.length);
    const got = bootstrapMean(sample, { seed: 1, resamples: 4000 });
    expect(got.low).toBeCloseTo(m - half, 2);
    expect(got.high).toBeCloseTo(m + half, 2);
  });

  it("the paired sign-flip test gives Fisher's answer on Darwin's Zea mays data", () => {
    // Fisher, The Design of Experiments (1935), §21: cross- minus self-fertilised heights in eighths of
    // an inch; 1726 of the 2^15 sign patterns are at least as extreme, two-sided p = 1726/32768.
    const crossed = [188, 96, 168, 176, 153, 172, 177, 163, 146, 173, 186, 168, 177, 184, 96];
    const selfed = [139, 163, 160, 160, 147, 149, 149, 122, 132, 144, 130, 144, 102, 124, 144];
    const test = pairedTest(crossed, selfed, { seed: 1 });
    expect(test.exact).toBe(true);
    expect(test.p).toBeCloseTo(1726 / 32768, 12);
    expect(test.meanDifference).toBeCloseTo((49 - 67 + 8 + 16 + 6 + 23 + 28 + 41 + 14 + 29 + 56 + 24 + 75 + 60 - 48) / 15, 12);
  });

  it("four positive differences: only the all-plus and all-minus patterns are as extreme, p = 2/16", () => {
    expect(pairedTest([2, 3, 4, 5], [1, 1, 1, 1], { seed: 1 }).p).toBeCloseTo(0.125, 12);
    expect(pairedTest([1, 2, 3], [1, 2, 3], { seed: 1 }).p).toBe(1);
  });

  it("beyond 16 pairs the test is Monte Carlo, never below 1/(R+1)", () => {
    const a = Array.from({ length: 30 }, () => 1);
    const b = Array.from({ length: 30 }, () => 0);
    const test = pairedTest(a, b, { seed: 3, resamples: 999 });
    expect(test.exact).toBe(false);
    expect(test.p).toBeCloseTo(1 / 1000, 12);
    // No difference at all: every pattern ties, p = 1.
    expect(pairedTest(b, b, { seed: 3, resamples: 99 }).p).toBe(1);
  });
});
