/** Text embeddings (the knowledge base's embedder), for statistics over prompts such as input drift. */
export interface Embeddings {
  readonly id: string;
  embed(texts: string[]): Promise<Float32Array[]>;
}
