import { gzipSync } from "node:zlib";
import { zipSync } from "fflate";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatchItem, DocumentUpload } from "../../../ports/knowledge.ts";
import type { Embedder } from "../../../services/retrieval/types.ts";
import { hashingEmbedder, openTestKb, policyOf, utf8, type TestKb } from "./helpers.ts";

/** The hashing embedder, recording each call's size; a text holding POISON makes its call fail. */
function recordingEmbedder(): Embedder & { calls: number[] } {
  const base = hashingEmbedder();
  const calls: number[] = [];
  return {
    id: base.id,
    dimension: base.dimension,
    calls,
    async embed(texts) {
      calls.push(texts.length);
      if (texts.some((t) => t.includes("POISON"))) throw new Error("the embedder choked");
      return base.embed(texts);
    },
  };
}

async function tarOf(entries: Array<{ name: string; body?: string; type?: "file" | "symlink" | "directory"; linkname?: string }>): Promise<Uint8Array> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? "file", linkname: e.linkname }, e.body ?? "");
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const part of pack as AsyncIterable<Buffer>) parts.push(part);
  return new Uint8Array(Buffer.concat(parts));
}

let t: TestKb;
let embedder: ReturnType<typeof recordingEmbedder>;
const batch = (tenant: string, uploads: DocumentUpload[]) => t.kb.uploadBatch(tenant, uploads, policyOf(t.store, tenant));
const titles = async (tenant: string) => (await t.kb.list(tenant)).map((d) => [d.title, d.status]).sort();
const entries = (items: BatchItem[]) => items.map((i) => [i.entry ?? null, i.ok ? "ok" : i.error.kind]);

beforeAll(async () => {
  embedder = recordingEmbedder();
  t = await openTestKb({ embedder, embedBatchSize: 8, batchLimits: { maxDocuments: 20, maxBytes: 64 * 1024 } });
});
afterAll(() => t.cleanup());

describe("batch ingestion", () => {
  it("embeds the chunks of many small documents in shared calls, each document still ready on its own", async () => {
    embedder.calls.length = 0;
    const uploads = Array.from({ length: 12 }, (_, i) => ({ bytes: utf8(`Note ${i} about gearbox ${i} maintenance.`), fileName: `n${i}.txt` }));
    const items = await batch("acme", uploads);
    await t.kb.idle();
    expect(items.every((i) => i.ok && i.created)).toBe(true);
    // 12 one-chunk documents in calls of 8 chunks: two calls, not twelve.
    expect(embedder.calls).toEqual([8, 4]);
    const docs = await t.kb.list("acme");
    expect(docs.map((d) => [d.status, d.chunkCount, d.progress])).toEqual(Array(12).fill(["ready", 1, 1]));
    const [hit] = await t.kb.search("acme", { query: "gearbox 7", k: 1, mode: "dense" });
    expect(hit.text).toBe("Note 7 about gearbox 7 maintenance.");
    expect((await t.kb.indexedChunkIds("acme")).length).toBe(12);
  });

  it("retries a group whose embedding fails one document at a time: only the bad document fails", async () => {
    embedder.calls.length = 0;
    const texts = ["Alpha pump manual.", "Bravo POISON valve.", "Charlie seal kit."];
    await batch("globex", texts.map((text, i) => ({ bytes: utf8(text), fileName: `g${i}.txt` })));
    await t.kb.idle();
    expect(embedder.calls).toEqual([3, 1, 1, 1]);
    const docs = await t.kb.list("globex");
    expect(docs.map((d) => [d.title, d.status]).sort()).toEqual([["g0.txt", "ready"], ["g1.txt", "failed"], ["g2.txt", "ready"]]);
    expect(docs.find((d) => d.status === "failed")!.error).toMatch(/choked/);
    await t.kb.delete("globex", docs.find((d) => d.status === "failed")!.id);
  });
});

describe("archive uploads", () => {
  it("stores each file of a zip as a document titled with its path, refusing unsafe and unsupported entries one by one", async () => {
    const zip = zipSync({
      "guide/intro.md": utf8("# Intro\n\nThe turbine starts in three steps."),
      "guide/faq.txt": utf8("Blades are inspected every spring."),
      "guide/": new Uint8Array(0),
      "../escape.txt": utf8("should never be stored"),
      "logo.png": new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]),
      "__MACOSX/guide/._intro.md": utf8("resource fork"),
    });
    const items = await batch("acme", [{ bytes: zip, fileName: "guide.zip" }, { bytes: utf8("A plain file beside the archive."), fileName: "plain.txt" }]);
    expect(entries(items)).toEqual([
      ["guide/intro.md", "ok"],
      ["guide/faq.txt", "ok"],
      ["../escape.txt", "invalid_request"],
      ["logo.png", "unsupported_media_type"],
      [null, "ok"],
    ]);
    expect(items[2].ok ? "" : items[2].error.message).toMatch(/path traversal/);
    await t.kb.idle();
    const docs = await t.kb.list("acme");
    expect(docs.filter((d) => d.title.startsWith("guide/")).map((d) => [d.title, d.format, d.status]).sort()).toEqual([
      ["guide/faq.txt", "text", "ready"],
      ["guide/intro.md", "markdown", "ready"],
    ]);
    const [hit] = await t.kb.search("acme", { query: "turbine steps", k: 1, mode: "bm25" });
    expect(hit.title).toBe("guide/intro.md");
  });

  it("reads .tar and .tar.gz archives; links are refused as entries, not followed", async () => {
    const archive = await tarOf([
      { name: "docs", type: "directory" },
      { name: "docs/a.txt", body: "Compressor oil is changed yearly." },
      { name: "docs/link.txt", type: "symlink", linkname: "/etc/passwd" },
      { name: "/abs.txt", body: "absolute" },
    ]);
    const gz = new Uint8Array(gzipSync(await tarOf([{ name: "b.md", body: "# B\n\nFilters are cleaned monthly." }])));
    const items = await batch("globex", [{ bytes: archive, fileName: "docs.tar" }, { bytes: gz, fileName: "more.tgz" }]);
    expect(entries(items)).toEqual([
      ["docs/a.txt", "ok"],
      ["docs/link.txt", "unsupported_media_type"],
      ["/abs.txt", "invalid_request"],
      ["b.md", "ok"],
    ]);
    await t.kb.idle();
    expect(await titles("globex")).toEqual(expect.arrayContaining([["b.md", "ready"], ["docs/a.txt", "ready"]]));
  });

  it("refuses a zip bomb and a batch over the entry limit whole, storing nothing of it", async () => {
    const before = (await t.kb.list("acme")).length;
    // 1 MiB of zeros deflates to about a kilobyte; the batch's budget is 64 KiB decompressed.
    const bomb = zipSync({ "zeros.txt": new Uint8Array(1024 * 1024).fill(0x30) }, { level: 9 });
    expect(bomb.byteLength).toBeLessThan(8 * 1024);
    await expect(batch("acme", [{ bytes: utf8("Innocent neighbour."), fileName: "ok.txt" }, { bytes: bomb, fileName: "bomb.zip" }])).rejects.toMatchObject({
      kind: "too_large", message: expect.stringMatching(/decompresses to more than 65536 bytes/),
    });
    const many = zipSync(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`f${i}.txt`, utf8(`File number ${i}.`)])));
    await expect(batch("acme", [{ bytes: many, fileName: "many.zip" }])).rejects.toMatchObject({ kind: "too_large", message: expect.stringMatching(/more than 20 documents/) });
    await t.kb.idle();
    expect((await t.kb.list("acme")).length).toBe(before);
  });

  it("refuses a corrupt archive as one item, and the batch's other documents go on", async () => {
    const zip = zipSync({ "x.txt": utf8("Bearings are greased weekly and checked for noise.".repeat(20)) });
    const truncated = zip.slice(0, 60);
    const items = await batch("acme", [{ bytes: truncated, fileName: "broken.zip" }, { bytes: utf8("Gaskets are replaced when worn."), fileName: "gaskets.txt" }]);
    expect(items.map((i) => (i.ok ? "ok" : i.error.kind))).toEqual(["invalid_request", "ok"]);
    expect(items[0].ok ? "" : items[0].error.message).toMatch(/zip archive is corrupt/);
    await t.kb.idle();
    expect(await titles("acme")).toEqual(expect.arrayContaining([["gaskets.txt", "ready"]]));
  });
});
