import { join } from "node:path";
import type { OpenDatabase } from "../store/db.ts";
import { createUseLiteEmbedder } from "./embedders/use-lite.ts";
import { createOnnxEncoder } from "./embedders/onnx-encoder.ts";
import { createKnowledgeBase, type KnowledgeBase, type KnowledgeBaseOptions } from "./knowledge-base.ts";

export { createKnowledgeBase, type KnowledgeBase, type KnowledgeBaseOptions } from "./knowledge-base.ts";
export { KnowledgeError } from "./errors.ts";
export type { Embedder, SearchHit, SearchMode, SearchRequest, SearchFilter } from "./types.ts";

/**
 * The embedded knowledge base: indexes and pending uploads under `${dataDir}/knowledge`, embeddings
 * from USE Lite, or from a BERT-family ONNX folder when `embeddingModel` names one.
 */
export async function openKnowledgeBase(
  store: Pick<OpenDatabase, "db" | "sqlite">,
  dataDir: string,
  options: Partial<Omit<KnowledgeBaseOptions, "db" | "sqlite" | "dataDir">> & { embeddingModel?: string } = {},
): Promise<KnowledgeBase> {
  const { embeddingModel, ...rest } = options;
  const ownsEmbedder = !rest.embedder;
  const embedder = rest.embedder ?? (embeddingModel ? await createOnnxEncoder(embeddingModel) : await createUseLiteEmbedder());
  return createKnowledgeBase({ ...rest, db: store.db, sqlite: store.sqlite, dataDir: join(dataDir, "knowledge"), embedder, ownsEmbedder });
}
