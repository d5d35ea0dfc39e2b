/**
 * The monitors' timer on the Node host: every `intervalMs` (default 5 s) it runs one MonitorService
 * tick (settle finished checks, start due ones) and, once an hour, prunes served responses past their
 * retention. The clock is injected: due-ness is read from `now()`, so tests move the clock and call
 * `tick()` instead of sleeping. Workers' equivalent is a Cron Trigger whose scheduled() runs the same
 * tick (hosts/workers/worker.ts runs the pruning there; monitors need the inference plane it lacks).
 */
import type { MonitorService } from "../../edge/monitoring/monitor-service.ts";
import { RESPONSE_RETENTION_MS, type Feedback } from "../../ports/feedback.ts";

export interface MonitorSchedulerOptions {
  service: MonitorService;
  feedback?: Feedback;
  now: () => number;
  intervalMs?: number;
  onError?: (err: unknown) => void;
}

const PRUNE_EVERY_MS = 3_600_000;

export class MonitorScheduler {
  private timer?: ReturnType<typeof setInterval>;
  private lastPrune = -Infinity;
  private running?: Promise<void>;

  constructor(private readonly options: MonitorSchedulerOptions) {}

  start(): this {
    this.timer ??= setInterval(() => void this.tick().catch((err) => this.options.onError?.(err)), this.options.intervalMs ?? 5000);
    this.timer.unref?.();
    return this;
  }

  /** One step now: prune when an hour has passed, then the monitors' tick. */
  async tick(): Promise<void> {
    const now = this.options.now();
    if (this.options.feedback && now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.options.feedback.prune(now - RESPONSE_RETENTION_MS);
    }
    this.running = this.options.service.tick();
    await this.running;
  }

  /** Settles checks whose run just finished (the EvalWorker's hook). */
  settle(): Promise<void> {
    return this.options.service.settle();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }
}
