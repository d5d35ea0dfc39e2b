export interface EventStreamOptions {
  /** Called when the consumer stops iterating early (break, return, throw). */
  onAbandon: () => void;
  /** Buffered events at which the stream counts as `full` (the producer should pause); default 8. */
  highWaterMark?: number;
  /** Called when the consumer takes an event out of a full buffer (the producer may resume). */
  onDrain?: () => void;
}

/**
 * A push-to-pull bridge: the scheduler pushes events, the caller iterates them with for-await.
 * Pushing never blocks; `full` tells the producer that the consumer is not keeping up.
 */
export class EventStream<T> implements AsyncIterable<T> {
  private readonly buffered: T[] = [];
  private ended = false;
  private error: unknown;
  private wake?: () => void;
  private readonly highWaterMark: number;

  constructor(private readonly options: EventStreamOptions) {
    this.highWaterMark = options.highWaterMark ?? 8;
  }

  /** True while the consumer has at least `highWaterMark` events waiting. */
  get full(): boolean {
    return this.buffered.length >= this.highWaterMark;
  }

  push(event: T): void {
    if (this.ended) return;
    this.buffered.push(event);
    this.wake?.();
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    let finished = false;
    try {
      for (;;) {
        while (this.buffered.length) {
          const wasFull = this.full;
          const event = this.buffered.shift()!;
          if (wasFull && !this.full) this.options.onDrain?.();
          yield event;
        }
        if (this.ended) {
          finished = true;
          if (this.error !== undefined) throw this.error;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      if (!finished) this.options.onAbandon();
    }
  }
}
