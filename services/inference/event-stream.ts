export interface EventStreamOptions {
  /** Called when the consumer stops iterating early (break, return, throw). */
  onAbandon: () => void;
  /** Buffered events at which the stream becomes `full` (the producer should pause); default 8. */
  highWaterMark?: number;
  /** Called when a full stream's consumer has taken it down to half the high-water mark (the producer may resume). */
  onDrain?: () => void;
}

/**
 * A push-to-pull bridge: the scheduler pushes events, the caller iterates them with for-await.
 * Pushing never blocks; `full` tells the producer that the consumer is not keeping up. It stays set
 * until the consumer is halfway through the backlog, so a consumer slightly slower than the producer
 * pauses it now and then rather than at every event.
 */
export class EventStream<T> implements AsyncIterable<T> {
  private readonly buffered: T[] = [];
  private ended = false;
  private error: unknown;
  private wake?: () => void;
  private readonly highWaterMark: number;
  private blocked = false;

  constructor(private readonly options: EventStreamOptions) {
    this.highWaterMark = options.highWaterMark ?? 8;
  }

  get full(): boolean {
    return this.blocked;
  }

  push(event: T): void {
    if (this.ended) return;
    this.buffered.push(event);
    if (this.buffered.length >= this.highWaterMark) this.blocked = true;
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
          const event = this.buffered.shift()!;
          if (this.blocked && this.buffered.length <= this.highWaterMark / 2) {
            this.blocked = false;
            this.options.onDrain?.();
          }
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
