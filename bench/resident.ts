/**
 * Resident memory of this process, measured honestly for memory-mapped weights (Linux /proc):
 * RSS counts a file page once per mapping, so a weight file mapped by two sessions is counted twice;
 * PSS divides each page by its mappings and is the process's true share. `split` reads
 * /proc/self/smaps: the proportional share of the mappings of files matching `weights` (the engine's
 * weights.bin, llama.cpp's .gguf), of anonymous memory (heaps, KV caches, prepacked weight copies),
 * and of everything else (code, other files).
 */
import { readFileSync } from "node:fs";

export interface ResidentSplit {
  /** PSS of all mappings, MiB. */
  pssMiB: number;
  /** PSS of mappings of the weight files. */
  weightsMiB: number;
  /** Anonymous memory (private: not shared with anyone). */
  anonymousMiB: number;
  /** The rest: code, libraries, other files. */
  otherMiB: number;
  /** What RSS says (double counts a file mapped twice). */
  rssMiB: number;
}

const kB = (block: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(block)?.[1] ?? 0);

export function residentSplit(weights: RegExp): ResidentSplit {
  const text = readFileSync("/proc/self/smaps", "utf8");
  const split = { pssMiB: 0, weightsMiB: 0, anonymousMiB: 0, otherMiB: 0, rssMiB: 0 };
  // Each mapping: a header line (address range ... path), then its fields.
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const path = block.slice(0, block.indexOf("\n")).split(/\s+/).slice(5).join(" ");
    const pss = kB(block, "Pss") / 1024;
    const anonymous = kB(block, "Anonymous") / 1024;
    split.pssMiB += pss;
    split.rssMiB += kB(block, "Rss") / 1024;
    if (weights.test(path)) split.weightsMiB += pss;
    else {
      split.anonymousMiB += anonymous;
      split.otherMiB += pss - anonymous;
    }
  }
  return split;
}

/** Samples total PSS (smaps_rollup is cheap) every `ms` until `stop`; returns the highest seen. */
export function samplePeakPss(ms = 100): { stop(): number } {
  let peak = 0;
  const sample = () => {
    const pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"))?.[1] ?? 0) / 1024;
    peak = Math.max(peak, pss);
  };
  sample();
  const timer = setInterval(sample, ms);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
