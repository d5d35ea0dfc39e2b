/**
 * Interleaves several async streams into one, each value tagged with the index of its stream, in the
 * order they become ready. Every stream is pulled concurrently, at most one value ahead of the
 * consumer each; a stream that has just been served goes to the back, so a fast one cannot starve the
 * others. Closing the result early (return) closes every stream still open, without waiting for them.
 * A stream that throws ends the whole: callers that want to keep going turn errors into values first.
 */
export async function* interleave<T>(sources: readonly AsyncIterable<T>[]): AsyncGenerator<[number, T]> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<T> }>>();
  const pull = (index: number) => pending.set(index, iterators[index]!.next().then((result) => ({ index, result })));
  iterators.forEach((_, index) => pull(index));
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      pending.delete(index);
      if (result.done) continue;
      pull(index);
      yield [index, result.value];
    }
  } finally {
    for (const [index, next] of pending) {
      next.catch(() => undefined);
      iterators[index]!.return?.().catch(() => undefined);
    }
  }
}
