/**
 * Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_(params, max_norm) with norm_type 2:
 *   total = ‖(g_1, ..., g_n)‖₂ = √(Σ_i Σ_k g_ik²)        over every gradient together
 *   coef  = min(1, maxNorm / (total + 1e-6))              torch's 1e-6
 *   g ← coef · g                                         in place (coef = 1 leaves g as it is)
 * Returns `total`, the norm before clipping (what a trainer logs as grad_norm). A non-finite norm
 * leaves NaN/∞ in the gradients as torch does (error_if_nonfinite=False), unless `errorIfNonfinite`.
 */

export function globalNorm(grads: readonly Float32Array[]): number {
  let sum = 0;
  for (const g of grads) for (let k = 0; k < g.length; k++) sum += g[k]! * g[k]!;
  return Math.sqrt(sum);
}

export function clipGradNorm(grads: readonly Float32Array[], maxNorm: number, options: { errorIfNonfinite?: boolean } = {}): number {
  if (!(maxNorm > 0)) throw new Error(`maxNorm must be positive, got ${maxNorm}`);
  const total = globalNorm(grads);
  if (!Number.isFinite(total) && options.errorIfNonfinite) throw new Error(`the total gradient norm is ${total}`);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  if (coef < 1 || Number.isNaN(coef)) for (const g of grads) for (let k = 0; k < g.length; k++) g[k] = g[k]! * coef;
  return total;
}
