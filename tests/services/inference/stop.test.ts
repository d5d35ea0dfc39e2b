import { describe, expect, it } from "vitest";
import { createStopMatcher } from "../../../services/inference/stop.ts";
import { createRandom } from "../../../services/inference/sampler.ts";

/** Plain reference: the whole text cut before the earliest stop string. */
function referenceCut(text: string, stops: string[]): { text: string; stop?: string } {
  let best: { index: number; stop: string } | undefined;
  for (const stop of stops) {
    const index = text.indexOf(stop);
    if (index >= 0 && (!best || index < best.index)) best = { index, stop };
  }
  return best ? { text: text.slice(0, best.index), stop: best.stop } : { text };
}

function streamThrough(pieces: string[], stops: string[]) {
  const matcher = createStopMatcher(stops);
  const emitted: string[] = [];
  let stop: string | undefined;
  for (const piece of pieces) {
    const result = matcher.push(piece);
    emitted.push(result.text);
    stop ??= result.stop;
  }
  if (!matcher.stopped) emitted.push(matcher.flush());
  return { emitted, text: emitted.join(""), stop, stopped: matcher.stopped };
}

describe("stop sequences", () => {
  it("holds back a partial match and truncates before the stop string", () => {
    const matcher = createStopMatcher(["\n\nUser:", "THE END"]);
    expect(matcher.push("Hello")).toEqual({ text: "Hello" });
    expect(matcher.push(" there\n")).toEqual({ text: " there" });
    expect(matcher.push("\nUs")).toEqual({ text: "" });
    expect(matcher.push("er: hi")).toEqual({ text: "", stop: "\n\nUser:" });
    expect(matcher.stopped).toBe(true);
    expect(matcher.push("more")).toEqual({ text: "" });
  });

  it("releases held text when the partial match breaks, and at the end", () => {
    const matcher = createStopMatcher(["###"]);
    expect(matcher.push("a#")).toEqual({ text: "a" });
    expect(matcher.push("#b")).toEqual({ text: "##b" });
    expect(matcher.push("c##")).toEqual({ text: "c" });
    expect(matcher.flush()).toBe("##");
    expect(matcher.stopped).toBe(false);
  });

  it("picks the earliest stop when several match in one piece, and ignores empty stops", () => {
    expect(createStopMatcher(["b", "", "abc"]).push("xxabcd")).toEqual({ text: "xx", stop: "abc" });
    expect(createStopMatcher(["abc", "b"]).push("xxbabc")).toEqual({ text: "xx", stop: "b" });
    expect(createStopMatcher([]).push("any text")).toEqual({ text: "any text" });
  });

  it("matches the whole-text reference for random splits of random texts", () => {
    const random = createRandom(5);
    const alphabet = "ab\n😀 ";
    const stopsPool = ["ab", "\n\n", "b😀a", "aab a", "😀😀"];
    for (let trial = 0; trial < 500; trial++) {
      const chars = Array.from({ length: 4 + Math.floor(random() * 20) }, () => [...alphabet][Math.floor(random() * 5)]);
      const text = chars.join("");
      const stops = stopsPool.filter(() => random() < 0.4);
      const pieces: string[] = [];
      for (let i = 0; i < chars.length; ) {
        const n = 1 + Math.floor(random() * 4);
        pieces.push(chars.slice(i, i + n).join(""));
        i += n;
      }
      const streamed = streamThrough(pieces, stops);
      const expected = referenceCut(text, stops);
      expect(streamed.text).toBe(expected.text);
      expect(streamed.stop).toBe(expected.stop);
    }
  });
});
