import { describe, expect, it } from "vitest";
import { expectClose, expectDifferent, maxAbsDiff, row } from "./compare.ts";

describe("numerical comparison helpers", () => {
  const full = Float32Array.from([1, 2, 3, 4]);

  it("fail on a missing row, an empty comparison or a non-finite value, not only on a large difference", () => {
    expect(() => expectClose(full.subarray(0, 2), full, 1e-4)).toThrow(/length/);
    expect(() => expectClose([], [], 1e-4)).toThrow(/nothing to compare/);
    expect(() => expectClose([1, NaN, 3, 4], full, 1e-4)).toThrow(/non-finite value at 1/);
    expect(() => expectClose([1, 2, 3.5, 4], full, 1e-4, "logits")).toThrow(/logits: \|diff\| at 2 \(got 3.5, expected 3\)/);
    expect(() => expectDifferent(full, full.slice(), 1e-2)).toThrow(/should differ/);
    expect(() => row(full, 0, 2, 3)).toThrow(/array of 3 rows of 2/);
  });

  it("pass within the tolerance and report the largest difference", () => {
    expect(expectClose([1, 2, 3.00001, 4], full, 1e-4)).toBeCloseTo(1e-5, 6);
    expect(maxAbsDiff([1, 2.5, 3, 3], full)).toEqual({ worst: 1, index: 3 });
    expect(Array.from(row(full, 1, 2, 2))).toEqual([3, 4]);
  });
});
