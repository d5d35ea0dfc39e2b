/** Which training loop the trainer process runs. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadTrainFn } from "../../../hosts/node/train-fn.ts";
import type { TrainFn, TrainRequest } from "../../../trainer/train-api.ts";
import { findSharedModel, repoRoot } from "../../helpers/adapters.ts";

const TRAIN_MODULE = join(repoRoot, "trainer/train.ts");

describe("loadTrainFn", () => {
  it("is trainLora once trainer/train.ts is in the build, else a loop that fails each job with trainer_unavailable", async () => {
    const train = await loadTrainFn({});
    if (existsSync(TRAIN_MODULE)) {
      expect(train).toBe(((await import(TRAIN_MODULE)) as { trainLora: TrainFn }).trainLora);
    } else {
      await expect(train({} as TrainRequest)).rejects.toMatchObject({ kind: "unavailable", code: "trainer_unavailable" });
    }
  });

  it("is the stand-in under SWITCHYARD_TRAINER_FAKE_TRAIN=1 (tests only)", async () => {
    const train = await loadTrainFn({ SWITCHYARD_TRAINER_FAKE_TRAIN: "1" });
    const result = await train({ modelDir: findSharedModel("stories260k"), training: [], hyperparameters: { maxSteps: 2 }, seed: 1 });
    expect(result).toMatchObject({ steps: 2, cancelled: false });
  });
});
