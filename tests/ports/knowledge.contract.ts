/**
 * The Knowledge port's contract: what any implementation (in-process now, an HTTP client later) must
 * do. Each test gets a fresh plane from `open`, with two tenants that may upload.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PlaneError, type PlaneErrorKind } from "../../ports/errors.ts";
import type { IngestPolicy, Knowledge, KnowledgeDocument, SearchMode } from "../../ports/knowledge.ts";

export interface KnowledgeFixture {
  knowledge: Knowledge;
  /** Two existing tenants. */
  tenants: [string, string];
  close(): Promise<void>;
}

const POLICY: IngestPolicy = { chunkSize: 256, chunkOverlap: 32 };
const MODES: SearchMode[] = ["dense", "bm25", "hybrid"];
const REFUNDS = "Refunds are paid back within fourteen days of the return.";
const SHIPPING = "Parcels ship from the warehouse within two working days.";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** The kind of PlaneError `promise` rejects with ("resolved" when it does not). */
async function kindOf(promise: Promise<unknown>): Promise<PlaneErrorKind | "resolved"> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    if (err instanceof PlaneError) return err.kind;
    throw err;
  }
}

export function knowledgeContract(name: string, open: () => Promise<KnowledgeFixture>): void {
  describe(`Knowledge port: ${name}`, () => {
    let fx: KnowledgeFixture;
    let kb: Knowledge;
    let a: string;
    let b: string;
    beforeEach(async () => {
      fx = await open();
      kb = fx.knowledge;
      [a, b] = fx.tenants;
    });
    afterEach(async () => {
      await fx.close();
    });

    const upload = (tenant: string, text: string, policy: IngestPolicy = POLICY, title = "doc") =>
      kb.upload(tenant, { bytes: utf8(text), format: "text", title }, policy);

    /** The document once ingestion has finished (ready or failed). */
    async function settled(tenant: string, id: string): Promise<KnowledgeDocument> {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const doc = await kb.get(tenant, id);
        if ((doc.status !== "queued" && doc.status !== "processing") || Date.now() > deadline) return doc;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    describe("upload", () => {
      it("stores a document that becomes ready, with its fields", async () => {
        const { document, created } = await upload(a, REFUNDS, POLICY, "Refunds");
        expect(created).toBe(true);
        expect(document).toMatchObject({ tenantId: a, title: "Refunds", format: "text", sizeBytes: utf8(REFUNDS).length, error: null });
        expect(document.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(await settled(a, document.id)).toMatchObject({ id: document.id, status: "ready", progress: 1, chunkCount: 1 });
      });

      it("is idempotent: identical content gives back the stored document, not a new one", async () => {
        const first = await upload(a, REFUNDS);
        const again = await upload(a, REFUNDS, POLICY, "another title");
        expect(again.created).toBe(false);
        expect(again.document.id).toBe(first.document.id);
        expect(await kb.list(a)).toHaveLength(1);
        // Another tenant's identical bytes are its own document.
        const other = await upload(b, REFUNDS);
        expect(other.created).toBe(true);
        expect(other.document.id).not.toBe(first.document.id);
      });

      it("obeys the policy's maxDocumentBytes and maxDocuments (too_large)", async () => {
        expect(await kindOf(upload(a, "twelve bytes", { ...POLICY, maxDocumentBytes: 11 }))).toBe("too_large");
        expect((await upload(a, "twelve bytes", { ...POLICY, maxDocumentBytes: 12 })).created).toBe(true);
        expect(await kindOf(upload(a, SHIPPING, { ...POLICY, maxDocuments: 1 }))).toBe("too_large");
        expect((await upload(a, SHIPPING, { ...POLICY, maxDocuments: 2 })).created).toBe(true);
        // Without limits in the policy, the plane's defaults (far above two documents) apply.
        expect((await upload(a, "a third one")).created).toBe(true);
        expect(await kb.list(a)).toHaveLength(3);
      });

      it("refuses an empty document (invalid_request)", async () => {
        expect(await kindOf(upload(a, ""))).toBe("invalid_request");
        expect(await kb.list(a)).toEqual([]);
      });
    });

    describe("uploadBatch", () => {
      it("accepts a batch as a unit, reporting each document: queued, already stored, or refused alone", async () => {
        const existing = await upload(a, SHIPPING);
        const items = await kb.uploadBatch(a, [REFUNDS, SHIPPING, "", "x".repeat(40)].map((t, i) => ({ bytes: utf8(t), format: "text" as const, title: `b${i}` })), { ...POLICY, maxDocumentBytes: 32 * 1024 });
        expect(items.map((i) => (i.ok ? (i.created ? "created" : "exists") : i.error.kind))).toEqual(["created", "exists", "invalid_request", "created"]);
        const [refunds, shipping] = items;
        if (!refunds.ok || !shipping.ok) throw new Error("unreachable");
        expect(shipping.document.id).toBe(existing.document.id);
        expect(await settled(a, refunds.document.id)).toMatchObject({ status: "ready", chunkCount: 1, title: "b0" });
        expect(await kb.list(a)).toHaveLength(3);
        // The other tenant sees none of it.
        expect(await kindOf(kb.get(b, refunds.document.id))).toBe("not_found");
        expect(await kb.list(b)).toEqual([]);
      });

      it("refuses an empty batch (invalid_request) and one over the plane's batch limits (too_large), storing nothing", async () => {
        expect(await kindOf(kb.uploadBatch(a, [], POLICY))).toBe("invalid_request");
        const many = Array.from({ length: 1001 }, (_, i) => ({ bytes: utf8(`document ${i}`), format: "text" as const }));
        expect(await kindOf(kb.uploadBatch(a, many, POLICY))).toBe("too_large");
        expect(await kb.list(a)).toEqual([]);
      });
    });

    describe("get and list", () => {
      it("keep tenants apart: another tenant's document is not_found and not listed", async () => {
        const { document } = await upload(a, REFUNDS);
        expect((await kb.get(a, document.id)).id).toBe(document.id);
        expect(await kindOf(kb.get(b, document.id))).toBe("not_found");
        expect(await kindOf(kb.get(a, "doc_missing"))).toBe("not_found");
        expect((await kb.list(a)).map((d) => d.id)).toEqual([document.id]);
        expect(await kb.list(b)).toEqual([]);
      });

      it("list pages with limit and offset", async () => {
        await upload(a, REFUNDS);
        await upload(a, SHIPPING);
        const all = (await kb.list(a)).map((d) => d.id);
        expect(all).toHaveLength(2);
        expect((await kb.list(a, { limit: 1 })).map((d) => d.id)).toEqual(all.slice(0, 1));
        expect((await kb.list(a, { limit: 1, offset: 1 })).map((d) => d.id)).toEqual(all.slice(1));
      });
    });

    describe("search", () => {
      it.each(MODES)("%s returns the uploaded text, only the tenant's, and honours a document filter", async (mode) => {
        const refunds = await upload(a, REFUNDS, POLICY, "Refunds");
        const shipping = await upload(a, SHIPPING, POLICY, "Shipping");
        await upload(b, "Refunds at the other tenant are paid in vouchers.", POLICY, "Other");
        await settled(a, shipping.document.id);
        const [top] = await kb.search(a, { query: "when are refunds paid back", k: 5, mode });
        expect(top).toMatchObject({ documentId: refunds.document.id, title: "Refunds", text: REFUNDS });
        expect(top.score).toBeGreaterThan(0);
        const hits = await kb.search(a, { query: "refunds paid vouchers parcels ship", k: 10, mode });
        expect(hits.map((h) => h.title)).not.toContain("Other");
        const filtered = await kb.search(a, { query: "refunds paid parcels ship", k: 10, mode, filter: { documentIds: [shipping.document.id] } });
        expect(filtered.map((h) => h.text)).toEqual([SHIPPING]);
      });

      it("refuses an empty query (invalid_request)", async () => {
        expect(await kindOf(kb.search(a, { query: " " }))).toBe("invalid_request");
      });
    });

    describe("delete and reindex", () => {
      it("delete removes the document from get, list and search", async () => {
        const { document } = await upload(a, REFUNDS);
        await upload(a, SHIPPING);
        await kb.delete(a, document.id);
        expect(await kindOf(kb.get(a, document.id))).toBe("not_found");
        expect((await kb.list(a)).map((d) => d.id)).not.toContain(document.id);
        for (const mode of MODES) {
          const hits = await kb.search(a, { query: "refunds paid back", k: 10, mode });
          expect(hits.map((h) => h.documentId)).not.toContain(document.id);
        }
        expect(await kindOf(kb.delete(a, document.id))).toBe("not_found");
      });

      it("delete of another tenant's document is not_found and keeps it", async () => {
        const { document } = await upload(a, REFUNDS);
        expect(await kindOf(kb.delete(b, document.id))).toBe("not_found");
        expect((await kb.get(a, document.id)).id).toBe(document.id);
      });

      it("reindex resolves to the number of vectors: one per stored chunk of the tenant", async () => {
        const long = Array.from({ length: 80 }, (_, i) => `Sentence ${i} is about topic ${i}.`).join(" ");
        const docs = [await upload(a, REFUNDS), await upload(a, long, { chunkSize: 64, chunkOverlap: 0 }), await upload(b, SHIPPING)];
        const chunks = await Promise.all(docs.slice(0, 2).map(async ({ document }) => (await settled(a, document.id)).chunkCount));
        expect(chunks[1]).toBeGreaterThan(1);
        expect(await kb.reindex(a)).toBe(chunks[0] + chunks[1]);
        expect(await kb.reindex(b)).toBe(1);
        const [hit] = await kb.search(a, { query: "refunds paid back", k: 1, mode: "dense" });
        expect(hit.text).toBe(REFUNDS);
      });
    });
  });
}
