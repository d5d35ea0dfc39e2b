/** The Inference port's contract against the engine in a worker thread (hosts/node/engine-thread.ts) on stories260k. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Inference } from "../../ports/inference.ts";
import { startEngineThread } from "../../hosts/node/engine-thread.ts";
import { findModel } from "../helpers/model-path.ts";
import { inferenceContract } from "./inference.contract.ts";

inferenceContract(
  "engine in a worker thread on stories260k",
  async (): Promise<Inference> => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-inference-worker-"));
    const engine = await startEngineThread({ modelDir: findModel("stories260k"), modelId: "stories260k", cacheDir, maxQueue: 8, maxLoraRank: 64 });
    return {
      model: () => engine.model(),
      encode: (request) => engine.encode(request),
      generate: (request) => engine.generate(request),
      async close() {
        await engine.close();
        await rm(cacheDir, { recursive: true, force: true });
      },
    };
  },
  { id: "stories260k", contextLength: 512, vocabSize: 512 },
);
