import type { OpenDatabase } from "../store/db.ts";
import { createUseLiteEmbedder } from "./embedders/use-lite.ts";
import { createOnnxEncoder } from "./embedders/onnx-encoder.ts";
import { createKnowledgeBase, type KnowledgeBase, type KnowledgeBaseOptions } from "./knowledge-base.ts";
import { createWorkerEmbedder, DEFAULT_EMBED_THREADS, type EmbedderSpec } from "./embedders/worker-pool.ts";
import type { Embedder } from "./types.ts";

export { createKnowledgeBase, type KnowledgeBase, type KnowledgeBaseOptions } from "./knowledge-base.ts";
export { KnowledgeError } from "./errors.ts";
export type { Embedder, SearchHit, SearchMode, SearchRequest, SearchFilter } from "./types.ts";

/**
 * The embedded knowledge base (indexes in `${dataDir}/indexes`, pending uploads in `${dataDir}/documents`), embeddings
 * from USE Lite (fp32 unless `int8`), or from a BERT-family ONNX folder when `embeddingModel` names one.
 * Changing the embedder rebuilds each tenant's index from its stored chunks at the next start.
 */
export async function openKnowledgeBase(
  store: Pick<OpenDatabase, "db" | "sqlite">,
  dataDir: string,
  options: Partial<Omit<KnowledgeBaseOptions, "db" | "sqlite" | "dataDir">> & {
    /** A BERT-family ONNX folder (model.onnx + tokenizer.json) instead of USE Lite. */
    embeddingModel?: string;
    /** USE Lite with int8 dense layers: about 1.9x less embedding CPU, cosine about 0.998 to fp32. */
    int8?: boolean;
    /** Worker threads that run the embedder, off the event loop (default one per core, at most 4); 0 runs it on the calling thread. */
    embedThreads?: number;
  } = {},
): Promise<KnowledgeBase> {
  const { embeddingModel, int8, embedThreads = DEFAULT_EMBED_THREADS, ...rest } = options;
  const ownsEmbedder = !rest.embedder;
  const spec: EmbedderSpec = embeddingModel ? { kind: "onnx", dir: embeddingModel, options: {} } : { kind: "use-lite", options: { int8 } };
  const embedder = rest.embedder ?? (embedThreads > 0 ? await createWorkerEmbedder(spec, embedThreads) : await createInThread(spec));
  return createKnowledgeBase({ ...rest, db: store.db, sqlite: store.sqlite, dataDir, embedder, ownsEmbedder });
}

function createInThread(spec: EmbedderSpec): Promise<Embedder> {
  return spec.kind === "onnx" ? createOnnxEncoder(spec.dir, spec.options) : createUseLiteEmbedder(spec.options);
}
