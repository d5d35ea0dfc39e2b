/** Inside an embedding worker thread: builds the embedder its spec names, then answers embed requests one at a time. */
import { parentPort, workerData } from "node:worker_threads";
import type { Embedder } from "../types.ts";
import { createOnnxEncoder } from "./onnx-encoder.ts";
import { createUseLiteEmbedder } from "./use-lite.ts";
import type { EmbedderSpec, WorkerReply, WorkerRequest } from "./worker-pool.ts";

const spec = workerData as EmbedderSpec;
const port = parentPort!;

async function build(): Promise<Embedder> {
  return spec.kind === "onnx" ? createOnnxEncoder(spec.dir, spec.options) : createUseLiteEmbedder(spec.options);
}

try {
  const embedder = await build();
  port.postMessage({ type: "ready", id: embedder.id, dimension: embedder.dimension, maxTokens: embedder.maxTokens } satisfies WorkerReply);
  port.on("message", async ({ seq, texts }: WorkerRequest) => {
    try {
      const vectors = await embedder.embed(texts);
      port.postMessage({ type: "done", seq, vectors } satisfies WorkerReply, vectors.map((v) => v.buffer as ArrayBuffer));
    } catch (err) {
      port.postMessage({ type: "error", seq, message: (err as Error).message } satisfies WorkerReply);
    }
  });
} catch (err) {
  port.postMessage({ type: "failed", message: (err as Error).message } satisfies WorkerReply);
}
