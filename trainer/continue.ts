/**
 * Continuing an adapter: a job that starts from one of the tenant's adapters instead of PEFT's init.
 * Its stored PEFT files (AdapterCatalog.content) become the starting parameters, in PEFT's layout as
 * they were saved (no round trip through the serving layout's folded scale), and its adapter_config
 * fixes the LoRA shape: r, lora_alpha, use_rslora and target_modules. A job's hyperparameters may
 * repeat those values but not change them (`continuedHyperparameters` refuses a conflict).
 *
 * Only adapters this trainer could have produced continue: one rank and alpha for every module (no
 * rank_pattern / alpha_pattern) and every target in every layer (no layers_to_transform).
 */
import { PlaneError } from "../ports/errors.ts";
import type { AdapterFiles } from "../services/adapters/archive.ts";
import { validatePeftAdapter } from "../services/adapters/peft.ts";
import { LORA_TARGETS, type LoraModelShape, type LoraTarget } from "../services/model/lora-layout.ts";
import { loraParamsOf, type LoraParams, type LoraSpec } from "./lora-params.ts";

/** The LoRA fields of a job's hyperparameters (trainer/train.ts's Hyperparameters). */
export interface LoraShapeHyperparameters {
  rank?: number;
  alpha?: number;
  targetModules?: LoraTarget[];
}

const cannotContinue = (message: string) => new PlaneError("invalid_request", `The adapter cannot be continued: ${message}.`, { code: "adapter_not_continuable", param: "model" });

/** The adapter's parameters in PEFT's layout, checked against the base model. */
export function startingParams(files: AdapterFiles, shape: LoraModelShape): LoraParams {
  const adapter = validatePeftAdapter(files, shape, { maxRank: Number.MAX_SAFE_INTEGER });
  try {
    const { rank, targetModules } = adapter.summary;
    const alphas = new Set(adapter.modules.map((m) => m.alpha));
    if (adapter.modules.some((m) => m.rank !== rank) || alphas.size !== 1) throw cannotContinue("its modules differ in rank or alpha (rank_pattern / alpha_pattern)");
    if (adapter.modules.length !== targetModules.length * shape.numLayers) throw cannotContinue("it leaves some layers out (layers_to_transform)");
    const spec: LoraSpec = { targets: targetModules, rank, alpha: [...alphas][0]!, useRslora: adapter.config.use_rslora };
    const byKey = new Map(adapter.modules.map((m) => [m.key, m.tensorStem]));
    return loraParamsOf(shape, spec, ({ key }) => {
      const stem = byKey.get(key)!;
      return { a: adapter.store.getF32(`${stem}.lora_A.weight`), b: adapter.store.getF32(`${stem}.lora_B.weight`) };
    });
  } finally {
    adapter.store.close();
  }
}

/** `h` with the adapter's rank, alpha and targets; a different value asked for is refused (invalid_request). */
export function continuedHyperparameters<H extends LoraShapeHyperparameters>(h: H, spec: Pick<LoraSpec, "rank" | "alpha" | "targets">): H {
  const conflict = (param: string, asked: unknown, has: unknown) =>
    new PlaneError("invalid_request", `The adapter being continued has ${param} ${JSON.stringify(has)}; the job asks for ${JSON.stringify(asked)}. Leave ${param} out (it is taken from the adapter) or fine-tune the base model.`, {
      code: "hyperparameter_conflict",
      param: `switchyard.${param}`,
    });
  if (h.rank !== undefined && h.rank !== spec.rank) throw conflict("r", h.rank, spec.rank);
  if (h.alpha !== undefined && h.alpha !== spec.alpha) throw conflict("alpha", h.alpha, spec.alpha);
  const ordered = (ts: readonly string[]) => LORA_TARGETS.filter((t) => ts.includes(t));
  if (h.targetModules !== undefined && ordered(h.targetModules).join() !== ordered(spec.targets).join()) throw conflict("target_modules", ordered(h.targetModules), ordered(spec.targets));
  return { ...h, rank: spec.rank, alpha: spec.alpha, targetModules: ordered(spec.targets) as LoraTarget[] };
}

/** The same modules with B = 0: the base model's outputs (its validation loss beside the adapter's). */
export function withoutDelta(params: LoraParams): LoraParams {
  return { ...params, modules: params.modules.map((m) => ({ ...m, b: new Float32Array(m.b.length) })) };
}
