/**
 * `switchyard start` keeps the trainer process (`switchyard serve trainer`) running beside it: spawns
 * it, restarts it with exponential backoff when it dies (reset once it ran a minute), and stops it on
 * shutdown (SIGTERM, then SIGKILL after `stopTimeoutMs`). The child gets the server's resolved settings
 * as environment variables and SWITCHYARD_TRAINER_PARENT, so it exits if the server dies without
 * stopping it. A job the dead child held is claimed again when its lease expires and resumes from its
 * last state checkpoint (trainer/jobs/queue.ts, runner.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "../../bin/switchyard.mjs");

export interface SupervisorOptions {
  env: Record<string, string | undefined>;
  logger: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  stopTimeoutMs?: number;
  /** A child that lived this long restarts after minBackoffMs again. */
  healthyAfterMs?: number;
}

export interface TrainerSupervisor {
  /** The running child's pid, if one runs. */
  pid(): number | undefined;
  /** How many times the child was (re)started. */
  starts(): number;
  stop(): Promise<void>;
}

export function superviseTrainer(options: SupervisorOptions): TrainerSupervisor {
  const { logger } = options;
  const minBackoff = options.minBackoffMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  let backoff = minBackoff;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let restartTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  let starts = 0;

  const launch = () => {
    restartTimer = undefined;
    if (stopping) return;
    const startedAt = Date.now();
    const proc = spawn(process.execPath, [CLI, "serve", "trainer"], {
      env: { ...options.env, SWITCHYARD_TRAINER_PARENT: String(process.pid) },
      stdio: ["ignore", "inherit", "inherit"],
      // Its own process group: a Ctrl-C at the terminal reaches the server, which stops the child itself.
      detached: true,
    });
    child = proc;
    starts++;
    logger.info({ pid: proc.pid }, "trainer process spawned");
    exited = new Promise((resolveExit) =>
      proc.once("exit", (code, signal) => {
        child = undefined;
        resolveExit();
        if (stopping) return;
        if (Date.now() - startedAt >= (options.healthyAfterMs ?? 60_000)) backoff = minBackoff;
        logger.warn({ pid: proc.pid, code, signal, restartInMs: backoff }, "trainer process exited; restarting");
        restartTimer = setTimeout(launch, backoff);
        backoff = Math.min(backoff * 2, maxBackoff);
      }),
    );
    proc.once("error", (err) => logger.error({ err }, "trainer process failed to spawn"));
  };
  launch();

  return {
    pid: () => child?.pid,
    starts: () => starts,
    async stop() {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const proc = child;
      if (!proc) return;
      proc.kill("SIGTERM");
      const force = setTimeout(() => proc.kill("SIGKILL"), options.stopTimeoutMs ?? 10_000);
      await exited;
      clearTimeout(force);
    },
  };
}
