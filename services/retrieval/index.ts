import type { OpenDatabase } from "../store/db.ts";
import { createUseLiteEmbedder } from "./embedders/use-lite.ts";
import { createOnnxEncoder } from "./embedders/onnx-encoder.ts";
import { createKnowledgeBase, type KnowledgeBase, type KnowledgeBaseOptions } from "./knowledge-base.ts";

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
    /** USE Lite with int8 dense layers: about 4x faster ingest, cosine about 0.999 to fp32. */
    int8?: boolean;
  } = {},
): Promise<KnowledgeBase> {
  const { embeddingModel, int8, ...rest } = options;
  const ownsEmbedder = !rest.embedder;
  const embedder = rest.embedder ?? (embeddingModel ? await createOnnxEncoder(embeddingModel) : await createUseLiteEmbedder({ int8 }));
  return createKnowledgeBase({ ...rest, db: store.db, sqlite: store.sqlite, dataDir, embedder, ownsEmbedder });
}
