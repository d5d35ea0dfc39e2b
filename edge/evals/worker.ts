/**
 * The evaluation worker: a loop, started by the host, that runs queued runs one at a time and resumes
 * the runs a previous process left `running` (the host holds the data directory's lock, so one worker
 * owns every unfinished run). `stop()` aborts the run in progress without marking it, so the next
 * worker over the same store picks it up and skips its stored results. Web-standard APIs only: the
 * same code runs on Node and, once given a way to stay alive, on Workers.
 */
import type { Evals, EvalRun } from "../../ports/evals.ts";
import type { Tenants } from "../../ports/tenants.ts";
import { executeRun, type EvalChatDeps } from "./runner.ts";

export interface EvalWorkerOptions {
  evals: Evals;
  tenants: Pick<Tenants, "get">;
  chat: EvalChatDeps;
  /** How long an idle worker waits before looking again (default 250 ms). */
  pollMs?: number;
  onError?: (err: unknown, run: EvalRun) => void;
  /** Called after a run ends (succeeded, failed or cancelled; not when the worker stops mid-run). */
  onRunFinished?: (run: EvalRun) => void;
}

export class EvalWorker {
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(private readonly options: EvalWorkerOptions) {}

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  /** Looks for work now (a run was just created). */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    while (!signal.aborted) {
      const [next] = await this.options.evals.unfinishedRuns();
      if (next) await this.runOne(next);
      else await this.idle();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.pollMs ?? 250);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }

  private async runOne(run: EvalRun): Promise<void> {
    const { evals, tenants, chat } = this.options;
    try {
      const tenant = await tenants.get(run.tenantId);
      const dataset = await evals.getDataset(run.tenantId, run.spec.datasetId);
      if (!tenant || !dataset) return await this.fail(run, `The ${tenant ? "dataset" : "tenant"} of this run no longer exists.`);
      if (run.status === "queued") {
        await evals.setStatus(run.id, "running");
        await evals.addEvent(run.id, "info", `Started: ${dataset.items.length} items × ${run.spec.arms.length} arms.`);
      }
      const outcome = await executeRun(evals, chat, tenant, run, dataset, this.abort.signal);
      if (outcome === "succeeded") {
        await evals.setStatus(run.id, "succeeded");
        await evals.addEvent(run.id, "info", "Finished.");
      } else if (outcome === "cancelled") await evals.addEvent(run.id, "info", "Cancelled.");
      if (outcome !== "stopped") this.options.onRunFinished?.(run);
    } catch (err) {
      this.options.onError?.(err, run);
      await this.fail(run, err instanceof Error ? err.message : String(err));
      this.options.onRunFinished?.(run);
    }
  }

  private async fail(run: EvalRun, message: string): Promise<void> {
    await this.options.evals.setStatus(run.id, "failed", message);
    await this.options.evals.addEvent(run.id, "error", message);
  }
}
