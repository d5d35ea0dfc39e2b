/** Why the knowledge base refused something; edge/routes/knowledge.ts maps each kind to an HTTP status. */
export type KnowledgeErrorKind = "invalid" | "too_large" | "unsupported_format" | "not_found";

export class KnowledgeError extends Error {
  constructor(
    readonly kind: KnowledgeErrorKind,
    message: string,
    /** The request field at fault, when there is one. */
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "KnowledgeError";
  }
}
