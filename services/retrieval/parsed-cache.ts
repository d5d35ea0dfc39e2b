import type { ParsedDocument } from "./parse.ts";

/**
 * Parsed documents waiting for their ingestion job, so an upload is parsed once. Bounded by the
 * characters held: under a backlog (a folder ingested at once) the documents past the bound are
 * not kept, and their ingestion parses them again, under the same limits, rather than hold them all.
 */
export class ParsedCache {
  private readonly docs = new Map<string, ParsedDocument>();
  private chars = 0;

  constructor(private readonly maxChars: number) {}

  set(id: string, doc: ParsedDocument): void {
    if (this.chars + doc.text.length > this.maxChars) return;
    this.docs.set(id, doc);
    this.chars += doc.text.length;
  }

  /** Removes and returns the document, if it was kept. */
  take(id: string): ParsedDocument | undefined {
    const doc = this.docs.get(id);
    if (doc) {
      this.docs.delete(id);
      this.chars -= doc.text.length;
    }
    return doc;
  }
}
