/**
 * The progress display of a fine-tuning job: on a terminal, a cli-progress bar with step/total,
 * training loss, the latest validation loss and the ETA, with the job's messages printed above it; in a
 * file or pipe, one line per message and a step line for the first step and each tenth of the steps crossed.
 * A DPO job's display (`{ preference: true }`) adds the step's reward margin and accuracy (TRL's
 * rewards/margins and rewards/accuracies, means over the step's pairs).
 */
import cliProgress from "cli-progress";
import type { OutputStream } from "./ingest-run.ts";

export interface StepMetrics {
  step: number;
  totalSteps: number;
  trainLoss: number;
  /** Only on evaluation steps; the display keeps the last one. */
  validLoss?: number;
  /** DPO: the step's mean reward margin and the share of its pairs whose chosen reward is the higher. */
  margins?: number;
  accuracies?: number;
}

export interface DisplayOptions {
  /** A DPO job: show the reward margin and accuracy. */
  preference?: boolean;
}

export interface TrainDisplay {
  /** A `metrics` event; `etaSeconds` from the job's estimated_finish. */
  step(metrics: StepMetrics, etaSeconds?: number): void;
  /** Any other line (the job's messages, status changes). */
  message(text: string): void;
  stop(): void;
}

/** 75 -> "1m15s", 3725 -> "1h02m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const loss = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(4));
const eta = (seconds: number | undefined) => (seconds === undefined ? "-" : formatDuration(seconds));
const share = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(2));

/** The line a step prints outside a terminal (and what the bar's payload holds). */
export function stepLine(m: StepMetrics, validLoss: number | undefined, etaSeconds: number | undefined, options: DisplayOptions = {}): string {
  const percent = m.totalSteps > 0 ? Math.floor((m.step / m.totalSteps) * 100) : 100;
  const rewards = options.preference ? ` | margin ${loss(m.margins)} | accuracy ${share(m.accuracies)}` : "";
  return `train: step ${m.step}/${m.totalSteps} (${percent}%) | train loss ${loss(m.trainLoss)} | valid loss ${loss(validLoss)}${rewards} | ETA ${eta(etaSeconds)}`;
}

function barDisplay(stream: OutputStream, options: DisplayOptions): TrainDisplay {
  const rewards = options.preference ? " | margin {margin} | accuracy {accuracy}" : "";
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `train [{bar}] {percentage}% | step {value}/{total} | train loss {train} | valid loss {valid}${rewards} | ETA {remaining}`,
      hideCursor: true,
      // Redraw even when the line is unchanged: a message printed above it moves it down a line.
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let validLoss: number | undefined;
  return {
    step(m, etaSeconds) {
      validLoss = m.validLoss ?? validLoss;
      // Not `eta`: cli-progress fills that one with its own estimate.
      const payload = { train: loss(m.trainLoss), valid: loss(validLoss), margin: loss(m.margins), accuracy: share(m.accuracies), remaining: eta(etaSeconds) };
      if (!started) bar.start(m.totalSteps, m.step, payload);
      started = true;
      bar.setTotal(m.totalSteps);
      bar.update(m.step, payload);
    },
    message(text) {
      stream.write(started ? `\r\x1b[2K${text}\n` : `${text}\n`);
      if (started) bar.update(bar.getProgress() * bar.getTotal());
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

function lineDisplay(stream: OutputStream, options: DisplayOptions): TrainDisplay {
  let printedTenth = -1;
  let validLoss: number | undefined;
  return {
    step(m, etaSeconds) {
      validLoss = m.validLoss ?? validLoss;
      const tenth = m.totalSteps > 0 ? Math.floor((m.step / m.totalSteps) * 10) : 10;
      if (tenth > printedTenth || m.step === m.totalSteps) stream.write(`${stepLine(m, validLoss, etaSeconds, options)}\n`);
      printedTenth = Math.max(printedTenth, tenth);
    },
    message(text) {
      stream.write(`${text}\n`);
    },
    stop() {},
  };
}

/** A bar when `stream` is a terminal, lines otherwise. */
export function createTrainDisplay(stream: OutputStream, options: DisplayOptions = {}): TrainDisplay {
  return stream.isTTY ? barDisplay(stream, options) : lineDisplay(stream, options);
}
