import { describe, expect, it } from "vitest";
import { clipGradNorm, globalNorm } from "../../../trainer/optim/clip.ts";

describe("global-norm clipping (torch.nn.utils.clip_grad_norm_)", () => {
  it("takes the L2 norm over every gradient together and scales by max_norm / (norm + 1e-6)", () => {
    const grads = [new Float32Array([3, 0]), new Float32Array([0, 4]), new Float32Array([12])]; // norm 13
    expect(globalNorm(grads)).toBe(13);
    expect(clipGradNorm(grads, 6.5)).toBe(13);
    const coef = 6.5 / (13 + 1e-6);
    expect(grads.map((g) => Array.from(g))).toEqual([[3 * coef, 0], [0, 4 * coef], [12 * coef]].map((g) => g.map(Math.fround)));
    expect(globalNorm(grads)).toBeCloseTo(6.5, 5);
  });

  it("leaves gradients under the limit untouched and still returns their norm", () => {
    const grads = [new Float32Array([0.3, -0.4])];
    expect(clipGradNorm(grads, 1)).toBeCloseTo(0.5, 7);
    expect(Array.from(grads[0]!)).toEqual([0.3, -0.4].map(Math.fround));
  });

  it("reports a non-finite norm (and throws when asked to)", () => {
    expect(clipGradNorm([new Float32Array([Number.NaN, 1])], 1)).toBeNaN();
    expect(() => clipGradNorm([new Float32Array([Infinity])], 1, { errorIfNonfinite: true })).toThrow(/Infinity/);
  });
});
