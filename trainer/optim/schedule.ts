/**
 * Learning-rate schedule: linear warmup, then cosine decay, as transformers'
 * get_cosine_schedule_with_warmup (num_cycles = 0.5) and, with a floor,
 * get_cosine_with_min_lr_schedule_with_warmup (min_lr_rate). With W warmup steps, N total steps and
 * `step` = optimizer steps already taken (the LambdaLR counter: the first update uses step 0):
 *   step < W:  factor = step / max(1, W)
 *   else:      p = (step − W) / max(1, N − W),  c = ½·(1 + cos(π·p)),  factor = c·(1 − floor) + floor
 *   lr = baseLr · max(0, factor)
 * So with W > 0 the first update runs at lr 0, as in a Hugging Face Trainer run.
 * One deliberate difference: past N, transformers' cosine climbs again (p > 1); here p is capped at 1,
 * so the rate stays at the floor.
 */

export interface CosineScheduleOptions {
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** The decay's end as a fraction of baseLr (transformers' min_lr_rate); default 0. */
  minLrRate?: number;
}

/** The multiplier of baseLr at `step` (transformers' lr_lambda). */
export function cosineWarmupFactor(step: number, options: Omit<CosineScheduleOptions, "baseLr">): number {
  const { warmupSteps: w, totalSteps: n } = options;
  const floor = options.minLrRate ?? 0;
  if (step < w) return step / Math.max(1, w);
  const progress = Math.min(1, (step - w) / Math.max(1, n - w));
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
  return Math.max(0, cosine * (1 - floor) + floor);
}

/** lr(step) for step = 0, 1, ... optimizer steps taken. */
export function cosineWithWarmup(options: CosineScheduleOptions): (step: number) => number {
  const { baseLr, warmupSteps, totalSteps, minLrRate = 0 } = options;
  if (!(baseLr >= 0)) throw new Error(`baseLr must be non-negative, got ${baseLr}`);
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0 && Number.isInteger(totalSteps) && totalSteps >= 1)) {
    throw new Error(`warmupSteps and totalSteps must be integers (warmup >= 0, total >= 1), got ${warmupSteps}, ${totalSteps}`);
  }
  if (!(minLrRate >= 0 && minLrRate <= 1)) throw new Error(`minLrRate must be in [0, 1], got ${minLrRate}`);
  return (step) => baseLr * cosineWarmupFactor(step, options);
}
