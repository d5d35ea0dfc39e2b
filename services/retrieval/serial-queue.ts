/** Runs async jobs one at a time in arrival order, counting what is still pending per key. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly pending = new Map<string, number>();

  /** Queues `job`; its promise settles with the job's result once it has run. */
  run<T>(key: string, job: () => Promise<T>): Promise<T> {
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    const result = this.tail.then(job).finally(() => {
      const left = this.pending.get(key)! - 1;
      if (left === 0) this.pending.delete(key);
      else this.pending.set(key, left);
    });
    this.tail = result.catch(() => {});
    return result;
  }

  /** Jobs queued or running for `key`, the running one included. */
  pendingFor(key: string): number {
    return this.pending.get(key) ?? 0;
  }

  /** Resolves once the queue is empty, including jobs queued while waiting. */
  async idle(): Promise<void> {
    let last: Promise<unknown>;
    do {
      last = this.tail;
      await last;
    } while (last !== this.tail);
  }
}
