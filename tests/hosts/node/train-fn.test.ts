/** Which training loop the trainer process runs. */
import { describe, expect, it } from "vitest";
import { loadTrainFn } from "../../../hosts/node/train-fn.ts";
import { trainLora } from "../../../trainer/train.ts";
import { findSharedModel } from "../../helpers/adapters.ts";

describe("loadTrainFn", () => {
  it("is trainer/train.ts's trainLora", async () => {
    expect(await loadTrainFn({})).toBe(trainLora);
  });

  it("is the stand-in under SWITCHYARD_TRAINER_FAKE_TRAIN=1 (tests only)", async () => {
    const train = await loadTrainFn({ SWITCHYARD_TRAINER_FAKE_TRAIN: "1" });
    const result = await train({ modelDir: findSharedModel("stories260k"), training: [], hyperparameters: { maxSteps: 2 }, seed: 1 });
    expect(result).toMatchObject({ steps: 2, cancelled: false });
  });
});
