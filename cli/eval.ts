/**
 * `switchyard eval DATASET.jsonl [--arms prompt,rag,adapter,rag+adapter] [--html FILE]`: uploads the
 * test set to a running server, starts an evaluation run over the arms (default: every strategy the
 * tenant can use), follows it with a progress bar on stderr, then prints the report's table (per arm:
 * counts and each metric's mean with its 95% interval; then the significant findings) to stdout and
 * writes the HTML report. Exit 0: the run succeeded; 1: the file was refused or the run failed or was
 * cancelled; 2: bad usage or no server; 130: Ctrl-C (the run is cancelled).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { EvalReport } from "../edge/evals/report.ts";
import type { CommandHelp } from "./help.ts";
import type { OutputStream } from "./ingest-run.ts";
import { interruptSignal } from "./job-follow.ts";
import { createProgressReporter } from "./progress.ts";
import { ApiRequestError, TERMINAL_STATUSES, type ServerApi } from "./server-api.ts";
import { parseCommandLine, SERVER_OPTIONS, serverCommand, UsageError } from "./server-target.ts";

const STRATEGIES = ["prompt", "rag", "adapter", "rag+adapter"];

const OPTIONS = {
  arms: { type: "string", value: "LIST", text: "comma-separated strategies (prompt,rag,adapter,rag+adapter); default: those the tenant can use" },
  html: { type: "string", value: "FILE", text: "write the HTML report here (default: eval-report-RUN.html)" },
  seed: { type: "string", value: "N", text: "the report's bootstrap and permutation seed" },
  ...SERVER_OPTIONS,
} as const satisfies Record<string, { type: "string" | "boolean"; value: string; text: string }>;

export const EVAL_HELP: CommandHelp = {
  usage: "eval DATASET.jsonl [options]",
  summary:
    "Evaluates strategies over a test set on a running server: uploads DATASET.jsonl ({\"messages\", \"reference\", \"relevant_documents\"?} per line),\n" +
    "runs every item through every arm with a progress bar, prints the report's table and writes the HTML report.",
  options: Object.entries(OPTIONS).map(([name, o]) => ({ flag: o.value ? `--${name} ${o.value}` : `--${name}`, text: o.text })),
};

export interface EvalIo {
  stdout: OutputStream;
  stderr: OutputStream;
  interrupt?: AbortSignal;
  pollMs?: number;
}

interface EvalArgs {
  data: string;
  arms?: string[];
  html?: string;
  seed?: number;
  server: { url?: string; key?: string; dataDir?: string };
}

export function evalCommand(argv: string[], io: EvalIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  return serverCommand({ name: "eval", help: EVAL_HELP }, argv, io.stderr, parse, (api, args) => run(api, args, io));
}

function parse(argv: string[]): EvalArgs {
  const { positionals, values } = parseCommandLine(argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError("give exactly one DATASET.jsonl");
  const str = (k: string) => values[k] as string | undefined;
  const arms = str("arms")?.split(",").map((a) => a.trim()).filter(Boolean);
  const bad = arms?.find((a) => !STRATEGIES.includes(a));
  if (bad) throw new UsageError(`unknown arm '${bad}': use ${STRATEGIES.join(", ")}`);
  const seed = str("seed") === undefined ? undefined : Number(str("seed"));
  if (seed !== undefined && !Number.isInteger(seed)) throw new UsageError("--seed takes an integer");
  return { data: positionals[0]!, arms, html: str("html"), seed, server: { url: str("url"), key: str("key"), dataDir: str("data-dir") } };
}

async function run(api: ServerApi, args: EvalArgs, io: EvalIo): Promise<number> {
  let dataset;
  try {
    dataset = await api.uploadEvalDataset(readFileSync(args.data), basename(args.data));
  } catch (err) {
    if (err instanceof ApiRequestError && err.status < 500 && err.status !== 401) {
      io.stderr.write(`${args.data} was refused: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const created = await api.createEvalRun({ dataset: dataset.id, arms: args.arms?.map((strategy) => ({ strategy })), seed: args.seed });
  io.stderr.write(`evaluating ${dataset.item_count} items × ${created.arms.length} arms (${created.arms.map((a) => a.strategy).join(", ")}) as run ${created.id}\n`);
  const { signal, release } = interruptSignal(io.interrupt);
  let run;
  try {
    run = await follow(api, created.id, signal, io.stderr, io.pollMs);
  } finally {
    release();
  }
  const report = await api.evalReport(run.id);
  io.stdout.write(reportTable(report));
  const htmlPath = args.html ?? `eval-report-${run.id}.html`;
  writeFileSync(htmlPath, await api.evalReportHtml(run.id));
  io.stderr.write(`run ${run.id} ${run.status}; HTML report written to ${htmlPath}\n`);
  return run.status === "succeeded" ? 0 : signal.aborted ? 130 : 1;
}

/** Polls the run until it ends, with a progress bar; an interrupt cancels the run (its results stay). */
async function follow(api: ServerApi, id: string, interrupt: AbortSignal, stderr: OutputStream, pollMs = 500) {
  const progress = createProgressReporter(stderr, { unit: "count" });
  let cancelled = false;
  try {
    for (;;) {
      if (interrupt.aborted && !cancelled) {
        cancelled = true;
        await api.cancelEvalRun(id);
      }
      const run = await api.getEvalRun(id);
      progress.update("items × arms", run.progress.done, run.progress.total);
      if (TERMINAL_STATUSES.has(run.status)) return run;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    progress.stop();
  }
}

const num = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? "–" : x.toFixed(3));

/** The report as a plain-text table: one row per arm, a `mean [low, high]` column per metric. */
export function reportTable(report: EvalReport): string {
  const metrics = [...new Set(report.arms.flatMap((a) => Object.keys(a.metrics)))];
  const header = ["arm", "pass", "fail", "err", ...metrics];
  const rows = report.arms.map((a) => [a.label, String(a.result_counts.passed), String(a.result_counts.failed), String(a.result_counts.errored), ...metrics.map((m) => (a.metrics[m] ? `${num(a.metrics[m]!.mean)} [${num(a.metrics[m]!.low)}, ${num(a.metrics[m]!.high)}]` : "–"))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const findings = report.findings.length ? report.findings.map((f) => `  ${f}`).join("\n") : "  no significant differences (paired sign-flip test, p < 0.05)";
  return `${line(header)}\n${rows.map(line).join("\n")}\n\nfindings:\n${findings}\n`;
}
