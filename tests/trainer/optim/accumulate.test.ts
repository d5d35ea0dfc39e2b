import { describe, expect, it } from "vitest";
import { GradientAccumulator } from "../../../trainer/optim/accumulate.ts";

describe("gradient accumulation", () => {
  // Per-token gradients of a 2-parameter model; micro-batch 1 has 3 tokens, micro-batch 2 has 1.
  const tokens = [
    [1, 2],
    [3, -2],
    [5, 0],
    [-1, 8],
  ];
  const mean = (rows: number[][]) => rows[0]!.map((_, k) => rows.reduce((a, r) => a + r[k]!, 0) / rows.length);

  it("weights each micro-batch's mean gradient by its item count: the gradient of the mean over all items", () => {
    const acc = new GradientAccumulator([2]);
    acc.add([Float32Array.from(mean(tokens.slice(0, 3)))], 3);
    acc.add([Float32Array.from(mean(tokens.slice(3)))], 1);
    expect(acc.microBatches).toBe(2);
    expect(acc.items).toBe(4);
    expect(Array.from(acc.mean()[0]!)).toEqual(mean(tokens).map(Math.fround)); // [2, 2]
  });

  it("with unit weights it is the plain average (loss / accumulation steps), and reset starts over", () => {
    const acc = new GradientAccumulator([2, 1]);
    acc.add([new Float32Array([1, 2]), new Float32Array([4])]);
    acc.add([new Float32Array([3, 6]), new Float32Array([-2])]);
    expect(acc.mean().map((g) => Array.from(g))).toEqual([[2, 4], [1]]);
    acc.reset();
    expect(() => acc.mean()).toThrow(/no micro-batch/);
    acc.add([new Float32Array([5, 5]), new Float32Array([5])], 2);
    expect(acc.mean().map((g) => Array.from(g))).toEqual([[5, 5], [5]]);
  });

  it("refuses gradients of the wrong shape", () => {
    const acc = new GradientAccumulator([2]);
    expect(() => acc.add([new Float32Array(3)])).toThrow(/gradient 0/);
    expect(() => acc.add([new Float32Array(2), new Float32Array(2)])).toThrow(/expected 1/);
    expect(() => acc.add([new Float32Array(2)], 0)).toThrow(/positive/);
  });
});
