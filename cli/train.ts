/**
 * `switchyard train DATA.jsonl [options]`: uploads the training (and validation) file to a running
 * server, creates a LoRA fine-tuning job with the hyperparameters given (OpenAI's fields and the
 * `switchyard` extension), and follows it with a progress display until it ends. `--method dpo` trains
 * on preference pairs (OpenAI's DPO file format) with `--beta` and `--loss`; `--from ADAPTER` continues
 * an adapter (SFT-then-DPO: the job's model is `BASE:ADAPTER`, the reference is that adapter frozen). A
 * file of the wrong kind for the method is the server's 400 invalid_file_format, told in the CLI's terms. stdout gets only the
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
import { resultLines } from "./job-result.ts";
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
  method: { type: "string", value: "M", text: "sft (default: chat examples) or dpo (preference pairs: {\"input\", \"preferred_output\", \"non_preferred_output\"} per line)" },
  beta: { type: "string", value: "X", text: "dpo: the strength of the pull to the reference (beta; default 0.1)" },
  loss: { type: "string", value: "L", text: "dpo: the preference loss, sigmoid (default) or ipo (switchyard.loss_type)" },
  from: { type: "string", value: "ADAPTER", text: "continue this adapter (name, name@version or id), e.g. DPO on an SFT adapter; its r, alpha and targets are kept" },
  ...SERVER_OPTIONS,
  detach: { type: "boolean", value: "", text: "submit, print the job id and return without following" },
  "cancel-on-interrupt": { type: "boolean", value: "", text: "Ctrl-C cancels the job instead of detaching from it" },
} as const satisfies Record<string, { type: "string" | "boolean"; value: string; text: string }>;

export const TRAIN_HELP: CommandHelp = {
  usage: "train DATA.jsonl [options]",
  summary:
    "Fine-tunes a LoRA adapter on a running server: uploads DATA.jsonl (chat examples, {\"messages\": [...]} per line, or preference\n" +
    "pairs with --method dpo), creates the job and follows it with a progress bar (step, losses, DPO's reward margin and accuracy, ETA);\n" +
    "prints the base-vs-adapter report and the fine_tuned_model to stdout when it succeeds.\n" +
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

type Method = "supervised" | "dpo";

interface TrainArgs {
  data: string;
  validation?: string;
  model?: string;
  /** The adapter to continue (`--from`). */
  from?: string;
  method: Method;
  body: Omit<JobCreateBody, "model" | "training_file" | "validation_file">;
  server: { url?: string; key?: string; dataDir?: string };
  detach: boolean;
  cancelOnInterrupt: boolean;
}

/** A file refused by the server's validation, or of the wrong kind for the method (exit 1; its message lists the bad lines). */
class RefusedFile extends Error {}

const FILE_KIND: Record<Method, { holds: string; other: string; hint: string }> = {
  supervised: { holds: "chat examples ({\"messages\": [...]} per line)", other: "preference pairs", hint: "add --method dpo to train on it" },
  dpo: { holds: "preference pairs ({\"input\", \"preferred_output\", \"non_preferred_output\"} per line)", other: "chat examples", hint: "drop --method dpo to fine-tune on it" },
};

export function trainCommand(argv: string[], io: TrainIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  return serverCommand({ name: "train", help: TRAIN_HELP }, argv, io.stderr, parse, (api, args) => run(api, args, io), (err) => {
    if (!(err instanceof RefusedFile)) return undefined;
    io.stderr.write(`${err.message}\n`);
    return 1;
  });
}

async function run(api: ServerApi, args: TrainArgs, io: TrainIo): Promise<number> {
  const model = args.from === undefined ? (args.model ?? (await api.baseModel())) : args.model === undefined ? args.from : `${args.model}:${args.from}`;
  const training = await upload(api, args.data, io);
  const validation = args.validation ? await upload(api, args.validation, io) : undefined;
  const job = await createJob(api, { model, training_file: training.id, validation_file: validation?.id, ...args.body }, args);
  io.stderr.write(`created ${args.method === "dpo" ? "DPO " : ""}fine-tuning job ${job.id} on ${api.baseUrl} (model ${job.model})\n`);
  if (args.detach) {
    io.stderr.write(`follow it with: switchyard jobs show ${job.id} --follow\n`);
    io.stdout.write(`${job.id}\n`);
    return 0;
  }
  return follow(api, job, args, io);
}

/** The job, or a RefusedFile naming the local file when the server says it is of the wrong kind for the method. */
async function createJob(api: ServerApi, body: JobCreateBody, args: TrainArgs): Promise<JobJson> {
  try {
    return await api.createJob(body);
  } catch (err) {
    if (!(err instanceof ApiRequestError && err.code === "invalid_file_format")) throw err;
    const path = err.param === "validation_file" ? args.validation! : args.data;
    const kind = FILE_KIND[args.method];
    throw new RefusedFile(`${path} holds ${kind.other}, but a ${args.method === "dpo" ? "DPO" : "supervised"} job trains on ${kind.holds}; ${kind.hint} (the server: ${err.message})`);
  }
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
  const display = createTrainDisplay(io.stderr, { preference: args.method === "dpo" });
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
      display.step({ step: d.step, totalSteps: d.total_steps, trainLoss: d.train_loss, validLoss: d.valid_loss, margins: d["rewards/margins"], accuracies: d["rewards/accuracies"] }, eta);
    } else {
      display.message(`${e.level === "info" ? "" : `${e.level}: `}${e.message}`);
    }
  }
}

function reportEnd(job: JobJson, io: TrainIo): number {
  if (job.status === "succeeded") {
    for (const line of resultLines(job)) io.stderr.write(`${line}\n`);
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
  const method = methodOption(text("method"));
  if (method !== "dpo") for (const name of ["beta", "loss"] as const) if (text(name) !== undefined) throw new UsageError(`--${name} applies to --method dpo only`);
  const loss = text("loss");
  if (loss !== undefined && loss !== "sigmoid" && loss !== "ipo") throw new UsageError(`invalid --loss: ${loss} (sigmoid or ipo)`);
  const from = text("from");
  if (from !== undefined && from.trim() === "") throw new UsageError("--from needs an adapter name, name@version or id");
  const switchyard = defined({ r: int("rank", 1), alpha: positive("alpha"), learning_rate: positive("learning-rate"), max_steps: int("max-steps", 1), loss_type: loss as "sigmoid" | "ipo" | undefined });
  const hyperparameters = defined({ n_epochs: int("epochs", 1), batch_size: int("batch-size", 1) });
  return {
    data,
    validation,
    model: text("model"),
    from,
    method,
    body: {
      suffix: text("suffix"),
      seed: int("seed", 0),
      method: method === "dpo" ? { type: "dpo", dpo: { hyperparameters: defined({ ...hyperparameters, beta: positive("beta") }) } } : { type: "supervised", supervised: { hyperparameters } },
      ...(Object.keys(switchyard).length > 0 ? { switchyard } : {}),
    },
    server: { url: text("url"), key: text("key"), dataDir: text("data-dir") },
    detach: values.detach === true,
    cancelOnInterrupt: values["cancel-on-interrupt"] === true,
  };
}

/** `--method`: sft (or supervised, OpenAI's name) or dpo. */
function methodOption(value: string | undefined): Method {
  if (value === undefined || value === "sft" || value === "supervised") return "supervised";
  if (value === "dpo") return "dpo";
  throw new UsageError(`invalid --method: ${value} (sft or dpo)`);
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
