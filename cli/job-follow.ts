/**
 * Following a fine-tuning job over the API: polls the job and its new events until the job ends or
 * the follower is interrupted (Ctrl-C detaches; the job goes on). Events come newest first in pages;
 * new ones are read back to the newest already seen and handed over oldest first, each once.
 */
import { TERMINAL_STATUSES, type EventJson, type JobJson, type ServerApi } from "./server-api.ts";

export interface FollowHandlers {
  /** New events, oldest first. */
  onEvents(events: EventJson[], job: JobJson): void;
  /** The job's status changed (called first with the status it has when following starts). */
  onStatus?(job: JobJson): void;
}

export interface FollowOptions {
  /** Aborted: stop following (the job is not touched). */
  interrupt?: AbortSignal;
  pollMs?: number;
}

export interface FollowResult {
  job: JobJson;
  /** Stopped by `interrupt` before the job ended. */
  interrupted: boolean;
}

/** The events of `jobId` not yet in `seen` (which it extends), oldest first. */
export async function newEvents(api: ServerApi, jobId: string, seen: Set<string>): Promise<EventJson[]> {
  const fresh: EventJson[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await api.events(jobId, after);
    for (const event of page.data) {
      if (seen.has(event.id)) return settle(fresh, seen);
      fresh.push(event);
    }
    if (!page.has_more || page.data.length === 0) return settle(fresh, seen);
    after = page.data.at(-1)!.id;
  }
}

function settle(fresh: EventJson[], seen: Set<string>): EventJson[] {
  for (const e of fresh) seen.add(e.id);
  return fresh.reverse();
}

const FINAL_EVENT_MS = 100;

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

export async function followJob(api: ServerApi, jobId: string, handlers: FollowHandlers, options: FollowOptions = {}): Promise<FollowResult> {
  const seen = new Set<string>();
  let status: string | undefined;
  for (;;) {
    const job = await api.getJob(jobId);
    if (job.status !== status) {
      status = job.status;
      handlers.onStatus?.(job);
    }
    const events = await newEvents(api, jobId, seen);
    if (events.length > 0) handlers.onEvents(events, job);
    if (TERMINAL_STATUSES.has(job.status)) {
      // The trainer writes its closing event just after the final status: read once more for it.
      await pause(FINAL_EVENT_MS);
      const last = await newEvents(api, jobId, seen);
      if (last.length > 0) handlers.onEvents(last, job);
      return { job, interrupted: false };
    }
    if (options.interrupt?.aborted) return { job, interrupted: true };
    await pause(options.pollMs ?? 500, options.interrupt);
    if (options.interrupt?.aborted) return { job, interrupted: true };
  }
}

/** `given`, or one that SIGINT aborts until released (so a second Ctrl-C after release kills as usual). */
export function interruptSignal(given: AbortSignal | undefined): { signal: AbortSignal; release(): void } {
  if (given) return { signal: given, release: () => {} };
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on("SIGINT", onSigint);
  return { signal: controller.signal, release: () => process.off("SIGINT", onSigint) };
}
