/**
 * Numerical comparisons for the test suites. Every comparison checks the lengths first: a loop over
 * one side only would let a missing row or a truncated tensor compare as a difference of 0.
 */
import { expect } from "vitest";

export interface Difference {
  /** Largest absolute difference. */
  worst: number;
  /** Where it is. */
  index: number;
}

/** Max abs difference of two equally long, non-empty, finite arrays; throws otherwise. */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>, label = "values"): Difference {
  if (actual.length !== expected.length) throw new Error(`${label}: length ${actual.length}, expected ${expected.length}`);
  if (expected.length === 0) throw new Error(`${label}: nothing to compare`);
  let worst = 0;
  let index = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(e)) throw new Error(`${label}: non-finite value at ${i} (got ${a}, expected ${e})`);
    const d = Math.abs(a - e);
    if (d > worst) (worst = d), (index = i);
  }
  return { worst, index };
}

/** Asserts the same length, finite values and a max abs difference below `tol`; returns the difference. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, label = "values"): number {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  const { worst, index } = maxAbsDiff(actual, expected, label);
  expect(worst, `${label}: |diff| at ${index} (got ${actual[index]}, expected ${expected[index]})`).toBeLessThan(tol);
  return worst;
}

/** Asserts two equally long arrays differ by more than `margin` somewhere (so a comparison is not vacuous). */
export function expectDifferent(a: ArrayLike<number>, b: ArrayLike<number>, margin: number, label = "values"): void {
  expect(maxAbsDiff(a, b, label).worst, `${label}: should differ`).toBeGreaterThan(margin);
}

/** Row `r` of a row-major [rows, width] array, checking that the array holds exactly `rows` rows. */
export function row(data: Float32Array, r: number, width: number, rows: number): Float32Array {
  expect(data.length, `array of ${rows} rows of ${width}`).toBe(rows * width);
  expect(r).toBeLessThan(rows);
  return data.subarray(r * width, (r + 1) * width);
}

export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
