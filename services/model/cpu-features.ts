/**
 * CPU features that choose a kernel (a selector per platform), read once from /proc/cpuinfo on Linux;
 * elsewhere none is assumed, which only ever picks the slower exact path.
 */
import { readFileSync } from "node:fs";

let flags: Set<string> | undefined;

function cpuFlags(): Set<string> {
  if (!flags) {
    let text = "";
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      // not Linux: no flags
    }
    flags = new Set(/^flags\s*:(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? []);
  }
  return flags;
}

/** AVX-512 VNNI or AVX-VNNI: products of uint8 by int8 accumulate in int32, without AVX2's saturating int16 pair sums. */
export function hasInt8DotProduct(): boolean {
  const f = cpuFlags();
  return f.has("avx512_vnni") || f.has("avx_vnni");
}
