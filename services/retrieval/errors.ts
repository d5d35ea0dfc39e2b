import { PlaneError, type PlaneErrorKind } from "../../ports/errors.ts";

/** Why the knowledge base refused something: the port's error kinds it uses. */
export type KnowledgeErrorKind = Extract<PlaneErrorKind, "invalid_request" | "too_large" | "unsupported_media_type" | "not_found">;

export class KnowledgeError extends PlaneError {
  constructor(
    override readonly kind: KnowledgeErrorKind,
    message: string,
    /** The request field at fault, when there is one. */
    param?: string | null,
  ) {
    super(kind, message, { param: param ?? undefined });
    this.name = "KnowledgeError";
  }
}
