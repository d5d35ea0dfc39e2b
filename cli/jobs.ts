/**
 * `switchyard jobs`: a tenant's fine-tuning jobs on a running server. `jobs [list] [--limit N]` lists
 * them newest first; `jobs show ID` prints the job and its events oldest first (`--follow`: then keeps
 * printing new ones until the job ends; Ctrl-C stops following, the job goes on); `jobs cancel ID`.
 * Exit 0, or 1 when the server refuses (an unknown job), or, following, when the job failed or was
 * cancelled; 2: bad usage or no server.
 */
import { formatHelp, type CommandHelp } from "./help.ts";
import { resultLines } from "./job-result.ts";
import { followJob, interruptSignal, newEvents } from "./job-follow.ts";
import type { OutputStream } from "./ingest-run.ts";
import { ApiRequestError, ServerUnreachableError, type EventJson, type JobJson, type ServerApi } from "./server-api.ts";
import { parseCommandLine, SERVER_OPTIONS, serverApi, UsageError } from "./server-target.ts";

const OPTIONS = {
  limit: { type: "string", value: "N", text: "list: most jobs shown (default 20, at most 100)" },
  follow: { type: "boolean", value: "", text: "show: keep printing the job's events until it ends (Ctrl-C stops following)" },
  ...SERVER_OPTIONS,
} as const satisfies Record<string, { type: "string" | "boolean"; value: string; text: string }>;

export const JOBS_HELP: CommandHelp = {
  usage: "jobs [list] [--limit N] | jobs show ID [--follow] | jobs cancel ID   [--url URL] [--key KEY]",
  summary:
    "A tenant's fine-tuning jobs on a running server: list them (id, status, model, fine_tuned_model, created),\n" +
    "show one with its events oldest first, or cancel one (a running job stops at its next step).",
  options: Object.entries(OPTIONS).map(([name, o]) => ({ flag: o.value ? `--${name} ${o.value}` : `--${name}`, text: o.text })),
};

export interface JobsIo {
  stdout: OutputStream;
  stderr: OutputStream;
  interrupt?: AbortSignal;
  pollMs?: number;
}

type Action = { kind: "list"; limit: number } | { kind: "show"; id: string; follow: boolean } | { kind: "cancel"; id: string };

export async function jobsCommand(argv: string[], io: JobsIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let action: Action;
  let api: ServerApi;
  try {
    const parsed = parse(argv);
    action = parsed.action;
    api = serverApi(parsed.server);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`switchyard jobs: ${err.message}\n${formatHelp(JOBS_HELP)}`);
    return 2;
  }
  try {
    if (action.kind === "list") {
      io.stdout.write(jobTable(await api.listJobs(action.limit)));
      return 0;
    }
    if (action.kind === "cancel") {
      const job = await api.cancelJob(action.id);
      io.stdout.write(`${job.id}: ${job.status === "cancelled" ? "cancelled" : `cancel requested (status ${job.status}); it stops at its next step`}\n`);
      return 0;
    }
    return await show(api, action.id, action.follow, io);
  } catch (err) {
    if (err instanceof ServerUnreachableError) {
      io.stderr.write(`switchyard jobs: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ApiRequestError) {
      io.stderr.write(`switchyard jobs: ${err.message}\n`);
      return err.status === 401 ? 2 : 1;
    }
    throw err;
  }
}

async function show(api: ServerApi, id: string, follow: boolean, io: JobsIo): Promise<number> {
  const printEvents = (events: EventJson[]) => {
    for (const e of events) io.stdout.write(eventLine(e));
  };
  if (!follow) {
    const job = await api.getJob(id);
    io.stdout.write(`${jobDetails(job)}\nevents:\n`);
    printEvents(await newEvents(api, id, new Set()));
    return 0;
  }
  const { signal, release } = interruptSignal(io.interrupt);
  let printed = false;
  try {
    const result = await followJob(
      api,
      id,
      {
        onStatus: (job) => {
          if (!printed) io.stdout.write(`${jobDetails(job)}\nevents:\n`);
          else io.stdout.write(`-- status: ${job.status}\n`);
          printed = true;
        },
        onEvents: printEvents,
      },
      { interrupt: signal, pollMs: io.pollMs },
    );
    if (result.interrupted) {
      io.stderr.write(`stopped following ${id}; the job goes on\n`);
      return 130;
    }
    io.stdout.write(`-- ${endLine(result.job)}\n`);
    return result.job.status === "succeeded" ? 0 : 1;
  } finally {
    release();
  }
}

const time = (unixSeconds: number | null) => (unixSeconds === null ? "-" : new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"));

/** One row per job, columns padded to their widest value. */
export function jobTable(jobs: JobJson[]): string {
  if (jobs.length === 0) return "no fine-tuning jobs\n";
  const rows = [["ID", "STATUS", "MODEL", "FINE_TUNED_MODEL", "CREATED"], ...jobs.map((j) => [j.id, j.status, j.model, j.fine_tuned_model ?? "-", time(j.created_at)])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  ")).join("\n") + "\n";
}

export function jobDetails(job: JobJson): string {
  const { result: _result, ...extension } = job.switchyard;
  const dpo = job.method.type === "dpo" ? { method: "dpo", beta: job.method.dpo.hyperparameters.beta } : {};
  const h = { ...dpo, ...job.hyperparameters, ...extension };
  const settings = Object.entries(h)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" ");
  const fields: Array<[string, string]> = [
    ["id", job.id],
    ["status", job.status],
    ["model", job.model],
    ["fine_tuned_model", job.fine_tuned_model ?? "-"],
    ["training_file", job.training_file],
    ["validation_file", job.validation_file ?? "-"],
    ["suffix", job.user_provided_suffix ?? "-"],
    ["seed", String(job.seed)],
    ["hyperparameters", settings],
    ["trained_tokens", job.trained_tokens === null ? "-" : String(job.trained_tokens)],
    ["created", time(job.created_at)],
    ["estimated_finish", time(job.estimated_finish)],
    ["finished", time(job.finished_at)],
    ["error", job.error ? `${job.error.message} (${job.error.code})` : "-"],
  ];
  const result = resultLines(job);
  return fields.map(([k, v]) => `${k.padEnd(17)}${v}`).join("\n") + (result.length > 0 ? `\n${result.join("\n")}` : "");
}

export function eventLine(e: EventJson): string {
  return `${time(e.created_at)}  ${e.level.padEnd(5)}  ${e.message}\n`;
}

function endLine(job: JobJson): string {
  if (job.status === "succeeded") return `succeeded: fine_tuned_model ${job.fine_tuned_model}`;
  if (job.status === "failed") return `failed: ${job.error?.message ?? "no reason recorded"}`;
  return job.status;
}

function parse(argv: string[]): { action: Action; server: { url?: string; key?: string; dataDir?: string } } {
  const { values, positionals } = parseCommandLine(argv, OPTIONS);
  const server = { url: values.url as string | undefined, key: values.key as string | undefined, dataDir: values["data-dir"] as string | undefined };
  const [verb = "list", id, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  if (verb === "list") {
    if (id !== undefined) throw new UsageError(`unexpected argument: ${id}`);
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new UsageError(`invalid --limit: ${String(values.limit)} (1 to 100)`);
    return { action: { kind: "list", limit }, server };
  }
  if (verb !== "show" && verb !== "cancel") throw new UsageError(`unknown jobs command: ${verb} (list, show or cancel)`);
  if (id === undefined) throw new UsageError(`jobs ${verb} needs a job id`);
  return { action: verb === "show" ? { kind: "show", id, follow: values.follow === true } : { kind: "cancel", id }, server };
}
