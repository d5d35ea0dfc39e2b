/**
 * The schedule against values of transformers' get_cosine_schedule_with_warmup and
 * get_cosine_with_min_lr_schedule_with_warmup, worked by hand from lr_lambda:
 *   warmup W = 10, total N = 110, so p = (step − 10)/100 after warmup, factor = ½(1 + cos πp)
 *   step 0: 0/10 = 0          step 5: 5/10 = 0.5         step 10: p = 0, factor 1
 *   step 35: p = ¼, ½(1 + cos π/4) = ½(1 + 0.70710678...) = 0.85355339059327373
 *   step 60: p = ½, ½(1 + 0) = 0.5
 *   step 85: p = ¾, ½(1 − 0.70710678...) = 0.14644660940672624
 *   step 110: p = 1, 0
 * and with min_lr_rate 0.1: factor·0.9 + 0.1, so 0.86819805153394636 at step 35, 0.55 at 60, 0.1 at 110.
 */
import { describe, expect, it } from "vitest";
import { cosineWarmupFactor, cosineWithWarmup } from "../../../trainer/optim/schedule.ts";

describe("cosine schedule with linear warmup (transformers)", () => {
  const lr = cosineWithWarmup({ baseLr: 2e-4, warmupSteps: 10, totalSteps: 110 });

  it.each([
    [0, 0],
    [5, 0.5],
    [10, 1],
    [35, 0.85355339059327373],
    [60, 0.5],
    [85, 0.14644660940672624],
    [110, 0],
  ])("step %i: factor %f", (step, factor) => {
    expect(lr(step)).toBeCloseTo(2e-4 * factor, 15);
  });

  it("decays to a floor with min_lr_rate", () => {
    const floored = cosineWithWarmup({ baseLr: 1, warmupSteps: 10, totalSteps: 110, minLrRate: 0.1 });
    expect(floored(5)).toBeCloseTo(0.5, 12); // the warmup is unchanged
    expect(floored(35)).toBeCloseTo(0.86819805153394636, 12);
    expect(floored(60)).toBeCloseTo(0.55, 12);
    expect(floored(110)).toBeCloseTo(0.1, 12);
  });

  it("without warmup starts at the base rate; past the end it stays at the floor (transformers would climb back)", () => {
    const noWarmup = cosineWithWarmup({ baseLr: 3, warmupSteps: 0, totalSteps: 4 });
    // 3·½(1 + cos(πs/4)) for s = 0..4: 3, 1.5·(1 + 0.70710678118654752), 1.5, 1.5·(1 − 0.70710678118654752), 0
    [3, 2.5606601717798213, 1.5, 0.43933982822017869, 0].forEach((x, s) => expect(noWarmup(s)).toBeCloseTo(x, 12));
    expect(noWarmup(7)).toBe(0);
    expect(cosineWarmupFactor(500, { warmupSteps: 10, totalSteps: 110, minLrRate: 0.2 })).toBeCloseTo(0.2, 12);
  });

  it("is monotone: up during warmup, down after", () => {
    const values = Array.from({ length: 111 }, (_, s) => lr(s));
    for (let s = 1; s <= 10; s++) expect(values[s]).toBeGreaterThan(values[s - 1]!);
    for (let s = 11; s <= 110; s++) expect(values[s]).toBeLessThan(values[s - 1]!);
  });

  it("refuses nonsense options", () => {
    expect(() => cosineWithWarmup({ baseLr: 1, warmupSteps: 1.5, totalSteps: 10 })).toThrow(/integers/);
    expect(() => cosineWithWarmup({ baseLr: 1, warmupSteps: 1, totalSteps: 10, minLrRate: 2 })).toThrow(/minLrRate/);
  });
});
