/** The Inference port's contract against the in-process engine on stories260k. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Inference } from "../../ports/inference.ts";
import { createEngine } from "../../services/inference/engine.ts";
import { findModel } from "../helpers/model-path.ts";
import { inferenceContract } from "./inference.contract.ts";

inferenceContract(
  "engine on stories260k",
  async (): Promise<Inference> => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-inference-port-"));
    const engine = await createEngine({ modelDir: findModel("stories260k"), cacheDir, maxBatch: 4, maxQueue: 8 });
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
