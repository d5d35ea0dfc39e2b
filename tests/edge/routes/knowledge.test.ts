import { existsSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { knowledgeRoutes } from "../../../edge/routes/knowledge.ts";
import type { AppEnv } from "../../../edge/env.ts";
import { ApiError } from "../../../edge/errors.ts";
import { onError } from "../../../edge/middleware/errors.ts";
import { tenants } from "../../../services/store/schema.ts";
import { eq } from "drizzle-orm";
import { addTenant, gatedEmbedder, openTestKb, utf8, type TestKb } from "../../services/retrieval/helpers.ts";
import { buildPdf } from "../../services/retrieval/pdf.ts";

let t: TestKb;
let app: Hono<AppEnv>;

/** The knowledge routes behind a stand-in for the auth middleware (tenant from `x-tenant`) and the edge's error renderer. */
function buildApp(ctx: TestKb): Hono<AppEnv> {
  const root = new Hono<AppEnv>();
  root.use(async (c, next) => {
    const tenant = ctx.store.db.select().from(tenants).where(eq(tenants.id, c.req.header("x-tenant") ?? "")).get();
    if (!tenant) throw new ApiError(401, "no tenant", "authentication_error");
    c.set("tenant", tenant);
    await next();
  });
  root.onError(onError);
  root.route("/v1/knowledge", knowledgeRoutes(ctx.kb));
  return root;
}

beforeEach(async () => {
  t = await openTestKb();
  app = buildApp(t);
});
afterEach(async () => {
  await t.cleanup();
});

const json = (tenant: string, method: string, path: string, body?: unknown) =>
  app.request(`/v1/knowledge${path}`, {
    method,
    headers: { "x-tenant": tenant, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const multipart = (tenant: string, file: File, fields: Record<string, string> = {}) => {
  const form = new FormData();
  form.set("file", file);
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return app.request("/v1/knowledge/documents", { method: "POST", headers: { "x-tenant": tenant }, body: form });
};

async function expectError(res: Response, status: number, message: RegExp, param?: string) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { message: string; param: string | null } };
  expect(body.error.message).toMatch(message);
  if (param !== undefined) expect(body.error.param).toBe(param);
}

describe("knowledge routes", () => {
  it("uploads JSON documents idempotently, gets, lists, searches and deletes them", async () => {
    const created = await json("acme", "POST", "/documents", { title: "Refunds", text: "Refunds are issued within 14 days of a return.", metadata: { lang: "en" } });
    expect(created.status).toBe(201);
    const doc = (await created.json()) as { id: string; status: string; chunk_count: number; metadata: unknown };
    expect(doc).toMatchObject({ status: "ready", chunk_count: 1, metadata: { lang: "en" } });

    const again = await json("acme", "POST", "/documents", { title: "Refunds again", text: "Refunds are issued within 14 days of a return." });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(doc.id);

    expect(((await (await json("acme", "GET", `/documents/${doc.id}`)).json()) as { title: string }).title).toBe("Refunds");
    expect(((await (await json("acme", "GET", "/documents?limit=10")).json()) as { data: unknown[] }).data).toHaveLength(1);

    for (const mode of ["dense", "bm25", "hybrid"]) {
      const res = await json("acme", "POST", "/search", { query: "how long do refunds take", k: 3, mode, filter: { metadata: { lang: "en" } } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data: Array<{ document_id: string; title: string; start_offset: number; end_offset: number; text: string }> };
      expect(body.data[0]).toMatchObject({ document_id: doc.id, title: "Refunds", start_offset: 0 });
      expect(body.data[0].end_offset).toBe(body.data[0].text.length);
    }
    for (const options of [{ fusion: "rrf" }, { fusion: "weighted", weights: { dense: 0.2, bm25: 0.8 } }, { group_by: "document" }, { max_chunks_per_document: 1 }]) {
      const res = await json("acme", "POST", "/search", { query: "refunds", k: 3, ...options });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { group_by: string; data: Array<{ document_id: string }> };
      expect(body.data.map((h) => h.document_id)).toEqual([doc.id]);
      expect(body.group_by).toBe("group_by" in options ? "document" : "chunk");
    }
    // Another tenant sees nothing of it.
    expect(((await (await json("globex", "POST", "/search", { query: "refunds" })).json()) as { data: unknown[] }).data).toEqual([]);
    await expectError(await json("globex", "GET", `/documents/${doc.id}`), 404, /not found/);
    await expectError(await json("globex", "DELETE", `/documents/${doc.id}`), 404, /not found/);

    const deleted = await json("acme", "DELETE", `/documents/${doc.id}`);
    expect(await deleted.json()).toEqual({ id: doc.id, object: "knowledge.document.deleted", deleted: true });
    await expectError(await json("acme", "GET", `/documents/${doc.id}`), 404, /not found/);
  });

  it("accepts multipart Markdown, HTML and PDF files", async () => {
    const md = await multipart("acme", new File(["# Setup\n\nInstall the agent first."], "setup.md", { type: "text/markdown" }), { title: "Setup guide", metadata: '{"team":"ops"}' });
    expect(md.status).toBe(201);
    expect(await md.json()).toMatchObject({ format: "markdown", title: "Setup guide", metadata: { team: "ops" } });
    const html = await multipart("acme", new File(["<h1>FAQ</h1><script>x()</script><p>Ask support.</p>"], "faq.html"));
    expect(await html.json()).toMatchObject({ format: "html", title: "faq.html", chunk_count: 1 });
    const pdf = await multipart("acme", new File([buildPdf([["Quarterly revenue grew."]])], "report.pdf", { type: "application/pdf" }));
    expect(await pdf.json()).toMatchObject({ format: "pdf", status: "ready", chunk_count: 1, warning: null });
    const scanned = await multipart("acme", new File([buildPdf([[]])], "scan.pdf"));
    expect(scanned.status).toBe(201);
    expect(await scanned.json()).toMatchObject({ format: "pdf", status: "ready", chunk_count: 0, warning: expect.stringMatching(/no text layer/) });
    const hits = (await (await json("acme", "POST", "/search", { query: "install agent", k: 1 })).json()) as { data: Array<{ heading_path: string[] }> };
    expect(hits.data[0].heading_path).toEqual(["Setup"]);
  });

  it("answers every bad input with its status and message", async () => {
    addTenant(t.store, "small", { limits: { maxDocumentBytes: 16, maxDocuments: 1 } });
    await expectError(await multipart("acme", new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], "image.png", { type: "image/png" })), 415, /unsupported document format/);
    await expectError(await app.request("/v1/knowledge/documents", { method: "POST", headers: { "x-tenant": "acme", "content-type": "text/plain" }, body: "hi" }), 415, /multipart\/form-data/);
    await expectError(await json("small", "POST", "/documents", { text: "x".repeat(17) }), 413, /limit maxDocumentBytes is 16/);
    await json("small", "POST", "/documents", { text: "tiny" });
    await expectError(await json("small", "POST", "/documents", { text: "other" }), 413, /limit maxDocuments is 1/);
    await expectError(await json("acme", "POST", "/documents", { title: "no text" }), 400, /text/, "text");
    await expectError(await json("acme", "POST", "/documents", { text: "x", format: "pdf" }), 400, /format/, "format");
    await expectError(await multipart("acme", new File(['{"text": 1}'], "rows.jsonl")), 400, /JSONL line 1/);
    await expectError(await multipart("acme", new File(["%PDF-1.4 broken"], "bad.pdf")), 400, /could not read PDF/);
    await expectError(await multipart("acme", new File(["ok"], "a.txt"), { metadata: "{nope" }), 400, /metadata/, "metadata");
    const noFile = new FormData();
    noFile.set("title", "x");
    await expectError(await app.request("/v1/knowledge/documents", { method: "POST", headers: { "x-tenant": "acme" }, body: noFile }), 400, /`file` field/, "file");
    await expectError(await app.request("/v1/knowledge/documents", { method: "POST", headers: { "x-tenant": "acme", "content-type": "application/json" }, body: "{oops" }), 400, /could not parse the JSON/);
    await expectError(await json("acme", "POST", "/search", { k: 3 }), 400, /query/, "query");
    await expectError(await json("acme", "POST", "/search", { query: "x", mode: "fuzzy" }), 400, /mode/, "mode");
    await expectError(await json("acme", "POST", "/search", { query: "x", k: 1000 }), 400, /k/, "k");
    await expectError(await json("acme", "POST", "/search", { query: "x", fusion: "max" }), 400, /fusion/, "fusion");
    await expectError(await json("acme", "POST", "/search", { query: "x", weights: { dense: -1 } }), 400, /weights/);
    await expectError(await json("acme", "POST", "/search", { query: "x", weights: { dense: 0, bm25: 0 } }), 400, /both be 0/);
    await expectError(await json("acme", "POST", "/search", { query: "x", weights: { text: 1 } }), 400, /weights/);
    await expectError(await json("acme", "POST", "/search", { query: "x", group_by: "page" }), 400, /group_by/, "group_by");
    await expectError(await json("acme", "POST", "/search", { query: "x", filter: { metadata: { "bad key": 1 } } }), 400, /metadata filter key/, "filter.metadata");
    await expectError(await json("acme", "POST", "/search", { query: "x", filter: { tenant: "globex" } }), 400, /filter/);
    await expectError(await json("acme", "GET", "/documents?limit=0"), 400, /limit/, "limit");
  });

  it("reports background ingestion with status and progress", async () => {
    await t.kb.close();
    const gate = gatedEmbedder();
    const bg = await openTestKb({ inlineBytes: 0, embedBatchSize: 2, embedder: gate.embedder });
    try {
      app = buildApp(bg);
      const text = Array.from({ length: 200 }, (_, i) => `Section ${i} describes widget ${i}.`).join("\n\n");
      const res = await json("acme", "POST", "/documents", { title: "Widgets", text });
      expect(res.status).toBe(202);
      const { id, status } = (await res.json()) as { id: string; status: string };
      expect(status).toBe("queued");
      const state = async () => (await (await json("acme", "GET", `/documents/${id}`)).json()) as { status: string; progress: number; chunk_count: number };

      await gate.arrived(); // the first batch is at the embedder
      expect(await state()).toMatchObject({ status: "processing", progress: 0 });
      gate.release();
      await gate.arrived(); // one batch of two embedded, the next one waiting
      const midway = await state();
      expect(midway.status).toBe("processing");
      expect(midway.progress).toBeGreaterThan(0);
      expect(midway.progress).toBeLessThan(1);

      gate.open();
      await bg.kb.idle();
      const done = await state();
      expect(done).toMatchObject({ status: "ready", progress: 1 });
      expect(midway.progress).toBeCloseTo((0.99 * 2) / done.chunk_count, 6);
    } finally {
      gate.open();
      await bg.cleanup();
    }
  });

  describe("batch upload", () => {
    type BatchBody = {
      object: string;
      accepted: number;
      refused: number;
      data: Array<{ index: number; file_index: number; entry: string | null; status: string; document: { id: string; status: string } | null; http_status?: number; error: { message: string; param: string | null; code: string | null } | null }>;
    };
    type ProgressView = { progress: number; done: boolean; counts: Record<string, number>; data: Array<{ id: string; status: string; chunk_count: number }> };
    const progressOf = async (tenant: string, ids: string[]) => (await json(tenant, "POST", "/documents/progress", { ids })).json() as Promise<ProgressView>;

    it("stores a JSON batch, reports each document (duplicates, refusals) and its progress, and searches it", async () => {
      addTenant(t.store, "small", { limits: { maxDocumentBytes: 64 } });
      const documents = [
        { title: "Refunds", text: "Refunds are issued within 14 days of a return." },
        { title: "Shipping", text: "Parcels ship from Rotterdam every weekday morning." },
        { title: "Refunds again", text: "Refunds are issued within 14 days of a return." },
        { title: "Huge", text: "x".repeat(200) },
        { title: "Warranty", text: "The warranty covers two years of normal use." },
      ];
      const res = await json("small", "POST", "/documents/batch", { documents });
      expect(res.status).toBe(202);
      const body = (await res.json()) as BatchBody;
      expect(body).toMatchObject({ object: "knowledge.batch", accepted: 4, refused: 1 });
      expect(body.data.map((d) => d.status)).toEqual(["queued", "queued", "exists", "refused", "queued"]);
      expect(body.data[2].document!.id).toBe(body.data[0].document!.id);
      expect(body.data[3]).toMatchObject({ index: 3, document: null, http_status: 413, error: { code: "payload_too_large", param: "file" } });
      expect(body.data[3].error!.message).toMatch(/maxDocumentBytes is 64/);

      const ids = [...new Set(body.data.flatMap((d) => (d.document ? [d.document.id] : [])))];
      await t.kb.idle();
      const progress = await progressOf("small", ids);
      expect(progress).toMatchObject({ progress: 1, done: true, counts: { queued: 0, processing: 0, ready: 3, failed: 0 } });
      expect(progress.data.map((d) => d.chunk_count)).toEqual([1, 1, 1]);
      const hits = (await (await json("small", "POST", "/search", { query: "warranty years", mode: "bm25", k: 1 })).json()) as { data: Array<{ title: string }> };
      expect(hits.data[0].title).toBe("Warranty");

      // Another tenant sees none of it.
      await expectError(await json("acme", "POST", "/documents/progress", { ids }), 404, /not found/);
      expect((await (await json("acme", "GET", "/documents")).json()) as { data: unknown[] }).toMatchObject({ data: [] });
    });

    it("takes multipart batches of files with shared metadata", async () => {
      const form = new FormData();
      form.append("file", new File(["# Returns\n\nItems can be returned for 30 days."], "returns.md", { type: "text/markdown" }));
      form.append("file", new File(["<h1>Hours</h1><p>Open from nine to five.</p>"], "hours.html", { type: "text/html" }));
      form.append("file", new File([""], "empty.txt", { type: "text/plain" }));
      form.set("metadata", JSON.stringify({ source: "handbook" }));
      const res = await app.request("/v1/knowledge/documents/batch", { method: "POST", headers: { "x-tenant": "acme" }, body: form });
      expect(res.status).toBe(202);
      const body = (await res.json()) as BatchBody;
      expect(body.data.map((d) => d.status)).toEqual(["queued", "queued", "refused"]);
      expect(body.data[2]).toMatchObject({ http_status: 400, error: { message: "document is empty" } });
      await t.kb.idle();
      const docs = await t.kb.list("acme");
      expect(docs.map((d) => [d.title, d.format, d.status, d.metadata]).sort()).toEqual([
        ["hours.html", "html", "ready", { source: "handbook" }],
        ["returns.md", "markdown", "ready", { source: "handbook" }],
      ]);
    });

    it("takes a zip archive among the files: one item per entry, with the file it came from and its path", async () => {
      const form = new FormData();
      form.append("file", new File(["Doors lock at ten."], "doors.txt", { type: "text/plain" }));
      const zip = zipSync({ "policies/leave.md": utf8("# Leave\n\nTwenty days a year."), "policies/../../x.txt": utf8("no") });
      form.append("file", new File([zip], "policies.zip", { type: "application/zip" }));
      const res = await app.request("/v1/knowledge/documents/batch", { method: "POST", headers: { "x-tenant": "acme" }, body: form });
      expect(res.status).toBe(202);
      const body = (await res.json()) as BatchBody;
      expect(body).toMatchObject({ accepted: 2, refused: 1 });
      expect(body.data.map((d) => [d.index, d.file_index, d.entry, d.status])).toEqual([
        [0, 0, null, "queued"],
        [1, 1, "policies/leave.md", "queued"],
        [2, 1, "policies/../../x.txt", "refused"],
      ]);
      expect(body.data[2]).toMatchObject({ http_status: 400, error: { message: expect.stringMatching(/path traversal/) } });
      await t.kb.idle();
      expect((await t.kb.list("acme")).map((d) => [d.title, d.status]).sort()).toEqual([["doors.txt", "ready"], ["policies/leave.md", "ready"]]);
    });

    it("refuses batches over their limits, and malformed ones, storing nothing", async () => {
      await t.kb.close();
      const small = await openTestKb({ batchLimits: { maxDocuments: 2, maxBytes: 100 } });
      try {
        app = buildApp(small);
        const doc = (text: string) => ({ text });
        await expectError(await json("acme", "POST", "/documents/batch", { documents: [doc("a"), doc("b"), doc("c")] }), 413, /3 documents; the limit is 2/, "documents");
        await expectError(await json("acme", "POST", "/documents/batch", { documents: [doc("a".repeat(60)), doc("b".repeat(60))] }), 413, /120 bytes; the limit is 100/, "documents");
        await expectError(await json("acme", "POST", "/documents/batch", { documents: [] }), 400, /documents/);
        await expectError(await json("acme", "POST", "/documents/batch", { documents: [{ title: "no text" }] }), 400, /text/);
        const text = await app.request("/v1/knowledge/documents/batch", { method: "POST", headers: { "x-tenant": "acme", "content-type": "text/plain" }, body: "hi" });
        await expectError(text, 415, /multipart\/form-data/);
        expect(await small.kb.list("acme")).toEqual([]);
      } finally {
        await small.cleanup();
      }
    });

    it("shows a batch's progress while it is ingested, one document after another", async () => {
      await t.kb.close();
      const gate = gatedEmbedder();
      const bg = await openTestKb({ embedBatchSize: 1, embedder: gate.embedder });
      try {
        app = buildApp(bg);
        const documents = [0, 1, 2, 3].map((i) => ({ title: `Doc ${i}`, text: `Paragraph one of document ${i}.` }));
        const body = (await (await json("acme", "POST", "/documents/batch", { documents })).json()) as BatchBody;
        const ids = body.data.map((d) => d.document!.id);
        await gate.arrived();
        expect(await progressOf("acme", ids)).toMatchObject({ progress: 0, done: false, counts: { queued: 3, processing: 1 } });
        gate.release();
        await gate.arrived(); // the first document is ready, the second at the embedder
        const midway = await progressOf("acme", ids);
        expect(midway).toMatchObject({ done: false, counts: { ready: 1, processing: 1, queued: 2 } });
        expect(midway.progress).toBeCloseTo(0.25, 6);
        // One unit of work: no index save until the batch's last document.
        expect(existsSync(join(bg.dataDir, "indexes", "acme.hnsw"))).toBe(false);
        gate.open();
        await bg.kb.idle();
        expect(await progressOf("acme", ids)).toMatchObject({ progress: 1, done: true, counts: { ready: 4 } });
        expect(existsSync(join(bg.dataDir, "indexes", "acme.hnsw"))).toBe(true);
      } finally {
        gate.open();
        await bg.cleanup();
      }
    });
  });
});
