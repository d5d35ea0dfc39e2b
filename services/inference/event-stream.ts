/** A push-to-pull bridge: the scheduler pushes events, the caller iterates them with for-await. */
export class EventStream<T> implements AsyncIterable<T> {
  private readonly buffered: T[] = [];
  private ended = false;
  private error: unknown;
  private wake?: () => void;

  /** Called when the consumer stops iterating early (break, return, throw). */
  constructor(private readonly onAbandon: () => void) {}

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
        while (this.buffered.length) yield this.buffered.shift()!;
        if (this.ended) {
          finished = true;
          if (this.error !== undefined) throw this.error;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      if (!finished) this.onAbandon();
    }
  }
}
