/**
 * The trainer's loop: claim a job, run it, repeat; poll when the queue is empty. One job at a time.
 * `stop` aborts the running job and hands it back to the queue (queued again, lease cleared) so the
 * next trainer restarts it without waiting for the lease to expire.
 * When the queue runs dry, state checkpoint folders of finished jobs (left by a trainer that died after
 * the finish, or a job cancelled while its trainer was dead) are deleted.
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { JobQueue } from "./queue.ts";
import { runJob, type RunnerDeps, type RunResult } from "./runner.ts";

export interface WorkerOptions extends RunnerDeps {
  /** How long to wait before looking again when no job is claimable. */
  pollMs: number;
  /** Called after each job (logs, tests). */
  onDone?(jobId: string, result: RunResult): void;
  onError?(error: unknown): void;
}

export class TrainerWorker {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: WorkerOptions) {}

  get queue(): JobQueue {
    return this.options.queue;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Looks for a job now instead of at the next poll. */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error("trainer shutting down"));
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let swept = false;
    while (!signal.aborted) {
      try {
        const job = await this.queue.claim();
        if (job) {
          const result = await runJob(job, this.options, signal);
          if (result === "aborted") await this.queue.release(job.id);
          this.options.onDone?.(job.id, result);
          swept = false;
          continue;
        }
        if (!swept) await this.sweepCheckpoints();
        swept = true;
      } catch (e) {
        this.options.onError?.(e);
      }
      await this.sleep(this.options.pollMs);
    }
  }

  private async sweepCheckpoints(): Promise<void> {
    const dir = this.options.checkpointDir;
    if (dir === undefined) return;
    let ids: string[];
    try {
      ids = readdirSync(dir);
    } catch {
      return;
    }
    for (const id of await this.queue.finishedAmong(ids)) rmSync(join(dir, id), { recursive: true, force: true });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
