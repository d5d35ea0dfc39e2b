/**
 * Where the engine's onnxruntime sessions run (SWITCHYARD_EXECUTION_PROVIDER). "cpu" is onnxruntime-node's
 * bundled build; "cuda" needs its CUDA 12 binaries (`npm ci` with ONNXRUNTIME_NODE_INSTALL=cuda12), CUDA 12
 * and cuDNN 9 on the library path. A provider that cannot load is a startup error: the engine never falls
 * back to the CPU silently (a GPU node that quietly runs on its CPU would look healthy and be very slow).
 */
export const EXECUTION_PROVIDERS = ["cpu", "cuda"] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

export class ExecutionProviderError extends Error {
  constructor(provider: ExecutionProvider, cause: unknown) {
    const hint = provider === "cuda" ? " (onnxruntime-node's CUDA 12 binaries: npm ci with ONNXRUNTIME_NODE_INSTALL=cuda12; CUDA 12 and cuDNN 9 on the library path)" : "";
    super(`the ${provider} execution provider could not be loaded${hint}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "ExecutionProviderError";
  }
}
