/**
 * Gradient accumulation over micro-batches. Each micro-batch i brings g_i, the gradient of its MEAN
 * loss over its n_i loss items (tokens), and the weight n_i; the result is the gradient of the mean
 * loss over every item of the accumulated batch:
 *   g = Σ_i n_i·g_i / Σ_i n_i
 * (Hugging Face's Trainer with num_items_in_batch; with every n_i = 1 it is the plain average, the
 * older loss / gradient_accumulation_steps). Sums are float64; the result is float32.
 */

export class GradientAccumulator {
  private readonly sums: Float64Array[];
  private weight = 0;
  private count = 0;

  constructor(readonly sizes: readonly number[]) {
    this.sums = sizes.map((n) => new Float64Array(n));
  }

  /** Micro-batches added since the last reset. */
  get microBatches(): number {
    return this.count;
  }

  /** Loss items (Σ n_i) since the last reset. */
  get items(): number {
    return this.weight;
  }

  add(grads: readonly Float32Array[], items = 1): void {
    if (!(items > 0)) throw new Error(`a micro-batch needs a positive item count, got ${items}`);
    if (grads.length !== this.sums.length) throw new Error(`expected ${this.sums.length} gradients, got ${grads.length}`);
    grads.forEach((g, i) => {
      const sum = this.sums[i]!;
      if (g.length !== sum.length) throw new Error(`gradient ${i}: ${g.length} values, expected ${sum.length}`);
      for (let k = 0; k < g.length; k++) sum[k] += items * g[k]!;
    });
    this.weight += items;
    this.count++;
  }

  /** Σ n_i·g_i / Σ n_i, fresh arrays. */
  mean(): Float32Array[] {
    if (this.count === 0) throw new Error("no micro-batch was accumulated");
    return this.sums.map((sum) => Float32Array.from(sum, (v) => v / this.weight));
  }

  reset(): void {
    for (const sum of this.sums) sum.fill(0);
    this.weight = 0;
    this.count = 0;
  }
}
