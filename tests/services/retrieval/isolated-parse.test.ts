/** Parsing untrusted documents in a worker thread under limits (real worker, real pdf.js, real SQLite). */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_PARSE_LIMITS, DocumentParser, parseStarted } from "../../../services/retrieval/isolated-parse.ts";
import { ParsedCache } from "../../../services/retrieval/parsed-cache.ts";
import { documents } from "../../../services/store/schema.ts";
import { openTestKb, policyOf, utf8, type TestKb } from "./helpers.ts";
import { buildFlateBombPdf, buildPdf } from "./pdf.ts";

/** Counts worker parses started while `run` runs. */
async function countParses<T>(run: () => Promise<T>): Promise<{ result: T; parses: number }> {
  let parses = 0;
  const onStart = () => parses++;
  subscribe(parseStarted.name as string, onStart);
  try {
    return { result: await run(), parses };
  } finally {
    unsubscribe(parseStarted.name as string, onStart);
  }
}

/** Resolves at the next worker parse start. */
function nextParseStart(): Promise<void> {
  return new Promise((resolve) => {
    const onStart = () => {
      unsubscribe(parseStarted.name as string, onStart);
      resolve();
    };
    subscribe(parseStarted.name as string, onStart);
  });
}

let t: TestKb | undefined;
afterEach(async () => {
  await t?.cleanup();
  t = undefined;
});

describe("DocumentParser", () => {
  it("parses PDFs and large text in a worker, small text inline, with the same result", async () => {
    const parser = new DocumentParser();
    const pdf = await countParses(() => parser.parse("pdf", buildPdf([["Hello PDF world."]])));
    expect(pdf).toMatchObject({ parses: 1, result: { text: expect.stringContaining("Hello PDF world.") } });
    const big = "A paragraph of the manual.\n\n".repeat(50_000);
    const large = await countParses(() => parser.parse("text", utf8(big)));
    expect(large.parses).toBe(1);
    expect(large.result.blocks).toHaveLength(50_000);
    expect(await countParses(() => parser.parse("text", utf8("small")))).toMatchObject({ parses: 0, result: { text: "small" } });
  });

  it("leaves the caller's bytes whole: a Buffer (whose slice would share memory) is copied, not transferred", async () => {
    const pdf = buildPdf([["Still here."]]);
    const bytes = Buffer.alloc(pdf.byteLength); // its own ArrayBuffer, as readFileSync gives (pooled ones cannot be transferred)
    bytes.set(pdf);
    const before = Buffer.from(bytes);
    await new DocumentParser().parse("pdf", bytes);
    expect(bytes.equals(before)).toBe(true);
  });

  it("refuses a Flate bomb at the decoded-bytes limit", async () => {
    const parser = new DocumentParser({ ...DEFAULT_PARSE_LIMITS, maxDecodedBytes: 4 * 1024 * 1024 });
    await expect(parser.parse("pdf", buildFlateBombPdf(32))).rejects.toMatchObject({ kind: "too_large", message: expect.stringMatching(/decodes to more than 4194304 bytes/) });
  });

  it("refuses a parse that outgrows the memory limit: only the parsing process dies, the next parse works", async () => {
    const parser = new DocumentParser({ ...DEFAULT_PARSE_LIMITS, maxHeapMb: 32 });
    const records = Array.from({ length: 120_000 }, (_, i) => JSON.stringify({ id: i, text: `record ${i} `.repeat(8), tags: ["a", "b", i] }));
    await expect(parser.parse("jsonl", utf8(records.join("\n")))).rejects.toMatchObject({ kind: "too_large", message: expect.stringMatching(/more than 32 MB of memory/) });
    expect((await parser.parse("pdf", buildPdf([["still here"]]))).text.trim()).toBe("still here");
  });

  it("refuses a parse that outlasts the time limit, and kills its process", async () => {
    // The process alone takes far longer than 1 ms to start, so the limit is always reached first.
    const parser = new DocumentParser({ ...DEFAULT_PARSE_LIMITS, timeoutMs: 1 });
    await expect(parser.parse("pdf", buildPdf([["slow"]]))).rejects.toMatchObject({ kind: "too_large", message: expect.stringMatching(/longer than 1 ms/) });
  });

  it("runs at most `concurrency` parsing processes at once; the others wait their turn", async () => {
    const parser = new DocumentParser({ ...DEFAULT_PARSE_LIMITS, concurrency: 1 });
    let finished = 0;
    const finishedAtEachStart: number[] = [];
    const onStart = () => finishedAtEachStart.push(finished);
    subscribe(parseStarted.name as string, onStart);
    const parse = (label: string) => parser.parse("pdf", buildPdf([[label]])).then((doc) => (finished++, doc.text.trim()));
    try {
      expect(await Promise.all([parse("first"), parse("second"), parse("third")])).toEqual(["first", "second", "third"]);
    } finally {
      unsubscribe(parseStarted.name as string, onStart);
    }
    expect(finishedAtEachStart).toEqual([0, 1, 2]);
  });

  it("refuses an invalid PDF with pdf.js's reason", async () => {
    await expect(new DocumentParser().parse("pdf", utf8("%PDF-1.4 garbage"))).rejects.toMatchObject({ kind: "invalid_request", message: expect.stringMatching(/could not read PDF/) });
  });
});

describe("ParsedCache", () => {
  it("keeps parsed uploads up to its bound in characters, and frees them when taken", () => {
    const cache = new ParsedCache(10);
    const doc = (text: string) => ({ text, blocks: [] });
    cache.set("a", doc("123456"));
    cache.set("b", doc("12345")); // 11 > 10: not kept, its ingestion parses again
    expect(cache.take("b")).toBeUndefined();
    expect(cache.take("a")).toEqual(doc("123456"));
    expect(cache.take("a")).toBeUndefined();
    cache.set("c", doc("1234567890"));
    expect(cache.take("c")?.text).toBe("1234567890");
  });
});

describe("the knowledge base's parsing", () => {
  it("parses an uploaded PDF once (upload and ingestion share the parse)", async () => {
    t = await openTestKb({ inlineBytes: 0 });
    const kb = t.kb;
    const policy = policyOf(t.store, "acme");
    const { parses } = await countParses(async () => {
      await kb.upload("acme", { bytes: buildPdf([["Quarterly revenue grew."]]), fileName: "q.pdf" }, policy);
      await kb.idle();
    });
    expect(parses).toBe(1);
    expect((await kb.list("acme"))[0]).toMatchObject({ status: "ready", chunkCount: 1 });
  });

  it("close stops a running parse at once; its document stays queued and resumes at the next start", async () => {
    t = await openTestKb({ parseLimits: { maxDecodedBytes: 1024 * 1024 * 1024 } });
    const bomb = buildFlateBombPdf(256); // seconds of work for pdf.js: close must not wait for it
    t.store.db.insert(documents).values({ id: "doc_slow", tenantId: "acme", title: "slow.pdf", format: "pdf", sha256: "x", sizeBytes: bomb.byteLength, status: "queued", chunkSize: 256, chunkOverlap: 32 }).run();
    writeFileSync(join(t.dataDir, "documents", "doc_slow"), bomb);
    const started = nextParseStart();
    const slow = await t.reopen({ parseLimits: { maxDecodedBytes: 1024 * 1024 * 1024 } });
    await started;
    await slow.close();
    expect(await t.kb.get("acme", "doc_slow")).toMatchObject({ status: "processing", error: null });
    expect(existsSync(join(t.dataDir, "documents", "doc_slow"))).toBe(true);
    const kb = await t.reopen({ parseLimits: { maxDecodedBytes: 4 * 1024 * 1024 } });
    await kb.idle();
    expect(await kb.get("acme", "doc_slow")).toMatchObject({ status: "failed", error: expect.stringMatching(/decodes to more than/) });
  });

  it("fails a resumed background document at the limit, with the reason and nothing half-written", async () => {
    t = await openTestKb({ parseLimits: { maxDecodedBytes: 4 * 1024 * 1024 } });
    const bomb = buildFlateBombPdf(32);
    // A bomb queued before a restart (as by an older version): its ingestion resumes at the next start.
    t.store.db.insert(documents).values({ id: "doc_bomb", tenantId: "acme", title: "bomb.pdf", format: "pdf", sha256: "x", sizeBytes: bomb.byteLength, status: "queued", chunkSize: 256, chunkOverlap: 32 }).run();
    writeFileSync(join(t.dataDir, "documents", "doc_bomb"), bomb);
    const kb = await t.reopen({ parseLimits: { maxDecodedBytes: 4 * 1024 * 1024 } });
    await kb.idle();
    expect(await kb.get("acme", "doc_bomb")).toMatchObject({ status: "failed", chunkCount: 0, error: expect.stringMatching(/decodes to more than 4194304 bytes/) });
    expect(await kb.indexedChunkIds("acme")).toEqual([]);
    expect(existsSync(join(t.dataDir, "documents", "doc_bomb"))).toBe(false);
  });
});
