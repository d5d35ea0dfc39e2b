/**
 * Child process for the worker embedder's close test: closes a pool while a call runs on its thread, and
 * another while its spares load, then prints each call's outcome as JSON. Run apart from the test runner
 * because the failure it guards against aborts the whole process.
 */
import { createWorkerEmbedder } from "../../../services/retrieval/embedders/worker-pool.ts";

const texts = (n: number) => Array.from({ length: n }, (_, i) => `text ${i} about libraries and information retrieval`);

async function closeDuring(threads: number, count: number): Promise<number> {
  const embedder = await createWorkerEmbedder({ kind: "use-lite", options: { int8: true } }, threads);
  const call = embedder.embed(texts(count));
  await new Promise((resolve) => setTimeout(resolve, 5));
  await embedder.close!();
  return (await call).length;
}

console.log(JSON.stringify({ running: await closeDuring(1, 8), loadingSpares: await closeDuring(4, 64) }));
