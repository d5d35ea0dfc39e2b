import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../hosts/node/config.ts";
import { createEngine, ExecutionProviderError } from "../../../services/inference/engine.ts";
import { findModel } from "../../helpers/model-path.ts";

/** Whether this onnxruntime-node install has the CUDA EP's library (CI and developers' machines: installed with ONNXRUNTIME_NODE_INSTALL=skip, so not). */
function hasCudaProvider(): boolean {
  const ortMain = createRequire(import.meta.url).resolve("onnxruntime-node");
  const bin = join(dirname(ortMain), "..", "bin", "napi-v6", process.platform, process.arch);
  if (!existsSync(join(bin, "onnxruntime_binding.node"))) throw new Error(`onnxruntime-node's binaries are not in ${bin}`);
  return existsSync(join(bin, "libonnxruntime_providers_cuda.so"));
}

const cacheDir = await mkdtemp(join(tmpdir(), "sy-ep-"));
afterAll(() => rm(cacheDir, { recursive: true, force: true }));

describe("SWITCHYARD_EXECUTION_PROVIDER", () => {
  it("defaults to cpu, takes cuda, and stops the start on any other value, naming the variable", () => {
    expect(loadConfig({}).executionProvider).toBe("cpu");
    expect(loadConfig({ SWITCHYARD_EXECUTION_PROVIDER: "cuda" }).executionProvider).toBe("cuda");
    expect(loadConfig({}, ["--execution-provider", "cuda"]).executionProvider).toBe("cuda");
    expect(() => loadConfig({ SWITCHYARD_EXECUTION_PROVIDER: "rocm" })).toThrow(ConfigError);
    expect(() => loadConfig({ SWITCHYARD_EXECUTION_PROVIDER: "rocm" })).toThrow(/SWITCHYARD_EXECUTION_PROVIDER="rocm".*"cpu".*"cuda"/);
  });

  // Only the CPU provider can run here (no GPU, and onnxruntime-node's CUDA binaries are not installed):
  // where they are missing, asking for cuda must fail the engine's start, never run on the CPU instead.
  it("cuda without onnxruntime's CUDA binaries fails the engine's start with a clear error", async () => {
    const started = createEngine({ modelDir: findModel("stories260k"), cacheDir, executionProvider: "cuda" });
    if (hasCudaProvider()) {
      const engine = await started;
      expect(engine.stats().sessionsCreated).toBe(2);
      await engine.close();
      return;
    }
    const error = await started.then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(ExecutionProviderError);
    expect((error as Error).message).toMatch(/^the cuda execution provider could not be loaded \(.*ONNXRUNTIME_NODE_INSTALL=cuda12.*\): /);
  });
});
