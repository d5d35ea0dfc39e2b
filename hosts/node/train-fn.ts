/**
 * Which training loop the trainer process runs: trainer/train.ts's `trainLora` once that module is in
 * the build (loaded by path, so this compiles without it), else one that fails each job clearly.
 * SWITCHYARD_TRAINER_FAKE_TRAIN=1 (tests only) runs the stand-in of trainer/jobs/fake-train.ts instead,
 * each step SWITCHYARD_TRAINER_FAKE_STEP_MS apart.
 */
import { PlaneError } from "../../ports/errors.ts";
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import type { TrainFn } from "../../trainer/train-api.ts";

const TRAIN_MODULE = new URL("../../trainer/train.ts", import.meta.url).href;

export async function loadTrainFn(env: Record<string, string | undefined>): Promise<TrainFn> {
  if (env.SWITCHYARD_TRAINER_FAKE_TRAIN === "1") return fakeTrain({ stepMs: Number(env.SWITCHYARD_TRAINER_FAKE_STEP_MS ?? 0) });
  try {
    const module = (await import(TRAIN_MODULE)) as { trainLora?: TrainFn };
    if (module.trainLora) return module.trainLora;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw e;
  }
  return notInThisBuild;
}

const notInThisBuild: TrainFn = async () => {
  throw new PlaneError("unavailable", "The LoRA training loop (trainer/train.ts) is not part of this build yet.", { code: "trainer_unavailable" });
};
