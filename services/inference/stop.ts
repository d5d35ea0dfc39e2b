/**
 * Stop sequences over streamed text: releases only text that cannot be the start of a stop
 * string, holds back a possible partial match, and on a hit truncates before the stop string.
 */

export interface StopResult {
  /** Text safe to emit now. */
  text: string;
  /** The stop string that ended the stream, if one did (then `text` is the last piece). */
  stop?: string;
}

export interface StopMatcher {
  push(piece: string): StopResult;
  /** The held-back text at the end of generation (no stop string can complete any more). */
  flush(): string;
  readonly stopped: boolean;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function partialMatchLength(text: string, stops: string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

function earliestMatch(text: string, stops: string[]): { index: number; stop: string } | undefined {
  let best: { index: number; stop: string } | undefined;
  for (const stop of stops) {
    const index = text.indexOf(stop);
    if (index >= 0 && (!best || index < best.index)) best = { index, stop };
  }
  return best;
}

export function createStopMatcher(stopStrings: readonly string[]): StopMatcher {
  const stops = stopStrings.filter((s) => s.length > 0);
  let held = "";
  let stopped = false;
  return {
    get stopped() {
      return stopped;
    },
    push(piece) {
      if (stopped) return { text: "" };
      const pending = held + piece;
      const match = earliestMatch(pending, stops);
      if (match) {
        stopped = true;
        held = "";
        return { text: pending.slice(0, match.index), stop: match.stop };
      }
      const keep = partialMatchLength(pending, stops);
      held = pending.slice(pending.length - keep);
      return { text: pending.slice(0, pending.length - keep) };
    },
    flush() {
      const rest = held;
      held = "";
      return rest;
    },
  };
}
