/**
 * llama.cpp through node-llama-cpp (a devDependency, pinned), as the benchmarks and their test use it:
 * the prebuilt CPU binary that npm installs as an optional package, never a GPU build, never a build
 * from source or a download (`npm ci` runs no install script of it: package.json's allowScripts).
 */
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";

let llama: Promise<Llama> | undefined;

/** The one Llama of this process (node-llama-cpp keeps one backend per process anyway). */
export function cpuLlama(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error });
  return llama;
}
