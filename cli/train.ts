/**
 * `switchyard train DATA.jsonl [options]`: uploads the training (and validation) file to a running
 * server, creates a LoRA fine-tuning job with the hyperparameters given (OpenAI's fields and the
 * `switchyard` extension), and follows it with a progress display until it ends. stdout gets only the
 * result (the fine_tuned_model, or the job id with --detach), so scripts can capture it; everything
 * else goes to stderr. Exit 0: succeeded (or detached by --detach); 1: the file was refused, or the job
 * failed or was cancelled; 2: bad usage or no server; 130: Ctrl-C, which detaches without asking (the
 * job goes on; --cancel-on-interrupt cancels it instead).
 */
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import type { CommandHelp } from "./help.ts";
import { followJob, interruptSignal } from "./job-follow.ts";
import { ApiRequestError, TERMINAL_STATUSES, type EventJson, type FileJson, type JobCreateBody, type JobJson, type ServerApi } from "./server-api.ts";
import { parseCommandLine, SERVER_OPTIONS, serverCommand, UsageError } from "./server-target.ts";
import { createTrainDisplay, type TrainDisplay } from "./train-progress.ts";
import type { OutputStream } from "./ingest-run.ts";

const OPTIONS = {
  validation: { type: "string", value: "FILE", text: "a validation file (JSONL); default: the trainer holds out 10% of DATA" },
  suffix: { type: "string", value: "NAME", text: "name of the adapter the job publishes (fine_tuned_model NAME@VERSION)" },
  epochs: { type: "string", value: "N", text: "passes over the training data (n_epochs; default auto)" },
  "batch-size": { type: "string", value: "N", text: "examples per step (batch_size; default auto)" },
  "learning-rate": { type: "string", value: "X", text: "peak learning rate (switchyard.learning_rate)" },
  rank: { type: "string", value: "R", text: "LoRA rank (switchyard.r)" },
  alpha: { type: "string", value: "A", text: "LoRA alpha (switchyard.alpha)" },
  "max-steps": { type: "string", value: "N", text: "stop after N optimizer steps (switchyard.max_steps)" },
  seed: { type: "string", value: "N", text: "seed: the same seed and data train the same adapter" },
  model: { type: "string", value: "M", text: "the base model to fine-tune (default: the server's)" },
  ...SERVER_OPTIONS,
  detach: { type: "boolean", value: "", text: "submit, print the job id and return without following" },
  "cancel-on-interrupt": { type: "boolean", value: "", text: "Ctrl-C cancels the job instead of detaching from it" },
} as const satisfies Record<string, { type: "string" | "boolean"; value: string; text: string }>;

export const TRAIN_HELP: CommandHelp = {
  usage: "train DATA.jsonl [options]",
  summary:
    "Fine-tunes a LoRA adapter on a running server: uploads DATA.jsonl (chat examples, {\"messages\": [...]} per line), creates the job\n" +
    "and follows it with a progress bar (step, losses, ETA); prints the fine_tuned_model to stdout when it succeeds.\n" +
    "Ctrl-C detaches (the job goes on; `switchyard jobs show ID --follow` follows it again) and exits 130.",
  options: Object.entries(OPTIONS).map(([name, o]) => ({ flag: o.value ? `--${name} ${o.value}` : `--${name}`, text: o.text })),
};

export interface TrainIo {
  stdout: OutputStream;
  stderr: OutputStream;
  /** Aborted on Ctrl-C (default: this process's SIGINT while following). */
  interrupt?: AbortSignal;
  pollMs?: number;
}

interface TrainArgs {
  data: string;
  validation?: string;
  model?: string;
  body: Omit<JobCreateBody, "model" | "training_file" | "validation_file">;
  server: { url?: string; key?: string; dataDir?: string };
  detach: boolean;
  cancelOnInterrupt: boolean;
}

/** A file refused by the server's validation (exit 1; its message lists the bad lines). */
class RefusedFile extends Error {}

export function trainCommand(argv: string[], io: TrainIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  return serverCommand({ name: "train", help: TRAIN_HELP }, argv, io.stderr, parse, (api, args) => run(api, args, io), (err) => {
    if (!(err instanceof RefusedFile)) return undefined;
    io.stderr.write(`${err.message}\n`);
    return 1;
  });
}

async function run(api: ServerApi, args: TrainArgs, io: TrainIo): Promise<number> {
  const model = args.model ?? (await api.baseModel());
  const training = await upload(api, args.data, io);
  const validation = args.validation ? await upload(api, args.validation, io) : undefined;
  const job = await api.createJob({ model, training_file: training.id, validation_file: validation?.id, ...args.body });
  io.stderr.write(`created fine-tuning job ${job.id} on ${api.baseUrl} (model ${job.model})\n`);
  if (args.detach) {
    io.stderr.write(`follow it with: switchyard jobs show ${job.id} --follow\n`);
    io.stdout.write(`${job.id}\n`);
    return 0;
  }
  return follow(api, job, args, io);
}

async function upload(api: ServerApi, path: string, io: TrainIo): Promise<FileJson> {
  try {
    const file = await api.uploadFile(readFileSync(path), basename(path));
    io.stderr.write(`uploaded ${path} as ${file.id} (${file.example_count} examples, ${file.token_count} tokens)\n`);
    return file;
  } catch (err) {
    // The validation message lists each bad line as "line N: reason".
    if (err instanceof ApiRequestError && err.status < 500 && err.status !== 401) throw new RefusedFile(`${path} was refused: ${err.message}`);
    throw err;
  }
}

async function follow(api: ServerApi, job: JobJson, args: TrainArgs, io: TrainIo): Promise<number> {
  const display = createTrainDisplay(io.stderr);
  const { signal, release } = interruptSignal(io.interrupt);
  let result;
  try {
    result = await followJob(
      api,
      job.id,
      {
        onStatus: (j) => {
          // The end is reported once, below.
          if (!TERMINAL_STATUSES.has(j.status)) display.message(`job ${j.id}: ${j.status.replace("_", " ")}`);
        },
        onEvents: (events, j) => showEvents(display, events, j),
      },
      { interrupt: signal, pollMs: io.pollMs },
    );
  } finally {
    display.stop();
    release();
  }
  if (result.interrupted) {
    if (args.cancelOnInterrupt) {
      const cancelled = await api.cancelJob(job.id);
      io.stderr.write(`interrupted: cancel requested for ${job.id} (status ${cancelled.status}); a running job stops at its next step\n`);
    } else {
      io.stderr.write(`interrupted: detached from ${job.id}, which goes on; follow it again with: switchyard jobs show ${job.id} --follow\n`);
    }
    return 130;
  }
  return reportEnd(result.job, io);
}

function showEvents(display: TrainDisplay, events: EventJson[], job: JobJson): void {
  const eta = job.estimated_finish === null ? undefined : job.estimated_finish - Date.now() / 1000;
  for (const e of events) {
    const d = e.data as Record<string, number | undefined>;
    if (e.type === "metrics" && typeof d.step === "number" && typeof d.total_steps === "number" && typeof d.train_loss === "number") {
      display.step({ step: d.step, totalSteps: d.total_steps, trainLoss: d.train_loss, validLoss: d.valid_loss }, eta);
    } else {
      display.message(`${e.level === "info" ? "" : `${e.level}: `}${e.message}`);
    }
  }
}

function reportEnd(job: JobJson, io: TrainIo): number {
  if (job.status === "succeeded") {
    io.stderr.write(`job ${job.id} succeeded: fine_tuned_model ${job.fine_tuned_model}${job.trained_tokens === null ? "" : ` (${job.trained_tokens} tokens trained)`}\n`);
    io.stdout.write(`${job.fine_tuned_model}\n`);
    return 0;
  }
  if (job.status === "failed") {
    io.stderr.write(`job ${job.id} failed${job.error ? `: ${job.error.message} (${job.error.code})` : ""}\n`);
    return 1;
  }
  io.stderr.write(`job ${job.id} was cancelled\n`);
  return 1;
}

function parse(argv: string[]): TrainArgs {
  const { values, positionals } = parseCommandLine(argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? "give the training file, DATA.jsonl" : `give one training file, not ${positionals.length}`);
  const text = (name: keyof typeof OPTIONS) => values[name] as string | undefined;
  const data = checkFile(positionals[0]!);
  const validation = text("validation") === undefined ? undefined : checkFile(text("validation")!);
  const int = (name: keyof typeof OPTIONS, min: number) => numberOption(name, text(name), (n) => Number.isInteger(n) && n >= min);
  const positive = (name: keyof typeof OPTIONS) => numberOption(name, text(name), (n) => n > 0);
  const switchyard = defined({ r: int("rank", 1), alpha: positive("alpha"), learning_rate: positive("learning-rate"), max_steps: int("max-steps", 1) });
  return {
    data,
    validation,
    model: text("model"),
    body: {
      suffix: text("suffix"),
      seed: int("seed", 0),
      method: { type: "supervised", supervised: { hyperparameters: defined({ n_epochs: int("epochs", 1), batch_size: int("batch-size", 1) }) } },
      ...(Object.keys(switchyard).length > 0 ? { switchyard } : {}),
    },
    server: { url: text("url"), key: text("key"), dataDir: text("data-dir") },
    detach: values.detach === true,
    cancelOnInterrupt: values["cancel-on-interrupt"] === true,
  };
}

function numberOption(name: string, value: string | undefined, check: (n: number) => boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !check(n)) throw new UsageError(`invalid --${name}: ${value}`);
  return n;
}

function checkFile(path: string): string {
  if (!statSync(path, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`no such file: ${path}`);
  return path;
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
