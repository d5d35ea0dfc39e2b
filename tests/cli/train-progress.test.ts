import { describe, expect, it } from "vitest";
import { captureStream } from "../helpers/capture-stream.ts";
import { createTrainDisplay, formatDuration } from "../../cli/train-progress.ts";

const capture = (isTTY: boolean) => captureStream(isTTY, 160);

describe("training progress display", () => {
  it("formats durations", () => {
    expect([0, 9.6, 75, 3599, 3725].map(formatDuration)).toEqual(["0s", "10s", "1m15s", "59m59s", "1h02m"]);
  });

  it("prints a line per tenth of the steps off a terminal, keeping the last validation loss", () => {
    const out = capture(false);
    const display = createTrainDisplay(out.stream);
    display.message("Training on 40 examples");
    for (let step = 1; step <= 20; step++) display.step({ step, totalSteps: 20, trainLoss: 2 / step, validLoss: step % 5 === 0 ? 1 / step : undefined }, 20 - step);
    display.stop();
    const lines = out.text().trim().split("\n");
    expect(lines[0]).toBe("Training on 40 examples");
    // The first step, then one per tenth crossed.
    expect(lines.slice(1)).toHaveLength(11);
    expect(lines[1]).toBe("train: step 1/20 (5%) | train loss 2.0000 | valid loss - | ETA 19s");
    expect(lines[2]).toBe("train: step 2/20 (10%) | train loss 1.0000 | valid loss - | ETA 18s");
    expect(lines[4]).toBe("train: step 6/20 (30%) | train loss 0.3333 | valid loss 0.2000 | ETA 14s");
    expect(lines.at(-1)).toBe("train: step 20/20 (100%) | train loss 0.1000 | valid loss 0.0500 | ETA 0s");
  });

  it("draws a bar with step, losses and ETA on a terminal, messages above it", () => {
    const out = capture(true);
    const display = createTrainDisplay(out.stream);
    display.step({ step: 3, totalSteps: 12, trainLoss: 1.5, validLoss: 1.75 }, 75);
    display.message("evaluating");
    display.step({ step: 12, totalSteps: 12, trainLoss: 0.25 }, 0);
    display.stop();
    const text = out.text();
    expect(text).toMatch(/train \[[█░]+\] 25% \| step 3\/12 \| train loss 1\.5000 \| valid loss 1\.7500 \| ETA 1m15s/);
    expect(text).toContain("\x1b[2Kevaluating\n");
    expect(text).toMatch(/train \[█+\] 100% \| step 12\/12 \| train loss 0\.2500 \| valid loss 1\.7500 \| ETA 0s/);
  });

  it("adds a DPO job's reward margin and accuracy, as lines and on the bar", () => {
    const lines = capture(false);
    const display = createTrainDisplay(lines.stream, { preference: true });
    display.step({ step: 1, totalSteps: 2, trainLoss: 0.6931, margins: -0.25, accuracies: 0.5 }, 3);
    display.step({ step: 2, totalSteps: 2, trainLoss: 0.5, validLoss: 0.6, margins: 1.5, accuracies: 1 }, 0);
    expect(lines.text().trim().split("\n")).toEqual([
      "train: step 1/2 (50%) | train loss 0.6931 | valid loss - | margin -0.2500 | accuracy 0.50 | ETA 3s",
      "train: step 2/2 (100%) | train loss 0.5000 | valid loss 0.6000 | margin 1.5000 | accuracy 1.00 | ETA 0s",
    ]);
    const bar = capture(true);
    const tty = createTrainDisplay(bar.stream, { preference: true });
    tty.step({ step: 2, totalSteps: 4, trainLoss: 0.5, margins: 0.125, accuracies: 0.75 }, 10);
    tty.stop();
    expect(bar.text()).toMatch(/train \[[█░]+\] 50% \| step 2\/4 \| train loss 0\.5000 \| valid loss - \| margin 0\.1250 \| accuracy 0\.75 \| ETA 10s/);
  });
});
