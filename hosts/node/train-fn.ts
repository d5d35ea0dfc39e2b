/**
 * Which training loop the trainer process runs: trainer/train.ts's `trainLora`, or, with
 * SWITCHYARD_TRAINER_FAKE_TRAIN=1 (tests of the supervisor only: a kill -9 and restart needs a job that
 * runs for a while without compiling graphs), the stand-in of trainer/jobs/fake-train.ts, each step
 * SWITCHYARD_TRAINER_FAKE_STEP_MS apart.
 */
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import type { TrainFn } from "../../trainer/train-api.ts";
import { trainLora } from "../../trainer/train.ts";

export async function loadTrainFn(env: Record<string, string | undefined>): Promise<TrainFn> {
  if (env.SWITCHYARD_TRAINER_FAKE_TRAIN === "1") return fakeTrain({ stepMs: Number(env.SWITCHYARD_TRAINER_FAKE_STEP_MS ?? 0) });
  return trainLora;
}
