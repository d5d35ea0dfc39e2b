/**
 * Progress display for long CLI tasks (model downloads and the like): a cli-progress bar on a
 * terminal, plain "label: 40%" lines every 10% when output goes to a file or pipe.
 */
import cliProgress from "cli-progress";
import type { DownloadProgress } from "../services/model/hub.ts";

export interface ProgressReporter {
  /** Reports `done` of `total` for the task called `label`; a new label ends the previous task. */
  update(label: string, done: number, total?: number): void;
  stop(): void;
}

type OutputStream = NodeJS.WritableStream & { isTTY?: boolean };

export interface ProgressOptions {
  /** How amounts print: "bytes" (1.5 MiB, the default) or "count" (plain numbers). */
  unit?: "bytes" | "count";
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function barReporter(stream: OutputStream, format: (n: number) => string): ProgressReporter {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: "{label} [{bar}] {percentage}% | {value}/{total}",
      formatValue: (value, _options, type) => (type === "value" || type === "total" ? format(value) : String(value)),
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let current: string | undefined;
  return {
    update(label, done, total) {
      if (label !== current) {
        if (current !== undefined) bar.stop();
        bar.start(total ?? 0, done, { label });
        current = label;
      }
      if (total !== undefined) bar.setTotal(total);
      bar.update(done, { label });
    },
    stop() {
      if (current !== undefined) bar.stop();
      current = undefined;
    },
  };
}

function lineReporter(stream: OutputStream, format: (n: number) => string): ProgressReporter {
  let current: { label: string; done: number; total?: number; printed: number } | undefined;
  const finish = () => {
    if (current && current.total === undefined) stream.write(`${current.label}: ${format(current.done)}\n`);
    current = undefined;
  };
  return {
    update(label, done, total) {
      if (current?.label !== label) {
        finish();
        current = { label, done, total, printed: -1 };
      }
      current.done = done;
      current.total = total;
      if (total === undefined) return;
      const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (tenth > current.printed) {
        current.printed = tenth;
        stream.write(`${label}: ${tenth * 10}% (${format(done)} of ${format(total)})\n`);
      }
    },
    stop: finish,
  };
}

/** A bar when `stream` is a terminal, percentage lines otherwise. */
export function createProgressReporter(stream: OutputStream = process.stdout, options: ProgressOptions = {}): ProgressReporter {
  const format = options.unit === "count" ? String : formatBytes;
  return stream.isTTY ? barReporter(stream, format) : lineReporter(stream, format);
}

/** Adapts a reporter to model download progress callbacks. */
export function downloadProgress(reporter: ProgressReporter): (progress: DownloadProgress) => void {
  return ({ file, received, total }) => reporter.update(file, received, total);
}
