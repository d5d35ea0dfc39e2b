/**
 * Interleaves several event streams as their events come, each tagged with its stream's index.
 * A failing stream fails the merge; leaving it early (or failing) abandons the other streams.
 */
export async function* mergeStreams<T>(streams: AsyncIterable<T>[]): AsyncGenerator<{ index: number; event: T }> {
  type Pulled = { index: number; result?: IteratorResult<T>; error?: unknown };
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<Pulled>>();
  const pull = (index: number) =>
    pending.set(
      index,
      iterators[index].next().then(
        (result) => ({ index, result }),
        (error: unknown) => ({ index, error: error ?? new Error("stream failed") }),
      ),
    );
  iterators.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { index, result, error } = await Promise.race(pending.values());
      pending.delete(index);
      if (error !== undefined) throw error;
      if (result!.done) continue;
      pull(index);
      yield { index, event: result!.value };
    }
  } finally {
    // Not awaited: a stream waiting for its next event ends once that event comes.
    for (const index of pending.keys()) void iterators[index].return?.().catch(() => undefined);
  }
}
