import { describe, expect, it } from "vitest";
import { interleave } from "../../../edge/chat/interleave.ts";

/** A stream of `values`, each after `gate` (a promise per value) resolves; records whether it was closed. */
function source<T>(values: T[], gate: (i: number) => Promise<void> = () => Promise.resolve()) {
  const state = { closed: false, pulled: 0 };
  async function* run() {
    try {
      for (let i = 0; i < values.length; i++) {
        await gate(i);
        state.pulled++;
        yield values[i]!;
      }
    } finally {
      state.closed = true;
    }
  }
  return { stream: run(), state };
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe("interleave", () => {
  it("tags every value with its stream and keeps each stream's order", async () => {
    const got = await all(interleave([source(["a1", "a2", "a3"]).stream, source([]).stream, source(["c1"]).stream]));
    expect(got.filter(([i]) => i === 0).map(([, v]) => v)).toEqual(["a1", "a2", "a3"]);
    expect(got.filter(([i]) => i === 2).map(([, v]) => v)).toEqual(["c1"]);
    expect(got).toHaveLength(4);
  });

  it("takes turns between streams that are always ready", async () => {
    const got = await all(interleave([source([0, 0, 0]).stream, source([1, 1, 1]).stream]));
    expect(got.map(([i]) => i)).toEqual([0, 1, 0, 1, 0, 1]);
  });

  it("yields a value as soon as its stream has it, not in stream order", async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const it = interleave([source(["slow"], () => slow).stream, source(["fast"]).stream]);
    expect((await it.next()).value).toEqual([1, "fast"]);
    release();
    expect((await it.next()).value).toEqual([0, "slow"]);
    expect((await it.next()).done).toBe(true);
  });

  it("closes every open stream when the consumer stops early", async () => {
    const a = source([1, 2, 3, 4]);
    const b = source([5, 6, 7, 8]);
    const it = interleave([a.stream, b.stream]);
    await it.next();
    await it.return(undefined);
    await new Promise((r) => setTimeout(r, 0));
    expect(a.state.closed && b.state.closed).toBe(true);
    expect(a.state.pulled + b.state.pulled).toBeLessThan(8);
  });

  it("ends with the error of a stream that throws", async () => {
    async function* failing() {
      yield 1;
      throw new Error("boom");
    }
    await expect(all(interleave([failing(), source([2, 3]).stream]))).rejects.toThrow("boom");
  });
});
