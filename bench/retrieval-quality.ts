/**
 * Retrieval quality on classic test collections (../shared/datasets: CISI and CACM): nDCG@10,
 * recall@10 and MAP@100 for dense, bm25 and hybrid search (each fusion, and a sweep of the weighted
 * fusion's dense weight), next to the plain BM25 baseline that each collection's converter prints.
 *
 * Each collection document becomes one knowledge-base document (title = its title, text = its
 * abstract, or the title when it has none) uploaded through kb.upload, so parsing, chunking, FTS5
 * and hnswlib are the real ones. Ranked by kb.search with group_by "document" and k 100: a document
 * counts once, at its best chunk, as the datasets' README asks. USE Lite embeddings are cached on
 * disk (.cache/bench-embeddings, keyed by the text's SHA-256), so a second run takes seconds.
 *
 *   npm run bench -- retrieval quality      (this section alone; `retrieval` runs it after the rest)
 *   npx tsx bench/retrieval-quality.ts [cisi,cacm]
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ingestPolicy } from "../edge/tenant-settings.ts";
import { createUseLiteEmbedder, USE_LITE_INT8_BY_DEFAULT } from "../services/retrieval/embedders/use-lite.ts";
import { createKnowledgeBase, DEFAULT_FUSION, type KnowledgeBase } from "../services/retrieval/knowledge-base.ts";
import type { Embedder, SearchRequest } from "../services/retrieval/types.ts";
import { openDatabase } from "../services/store/db.ts";
import { tenants } from "../services/store/schema.ts";
import { BENCH_ROOT, percentile, report } from "./report.ts";

const DATASETS = resolve(BENCH_ROOT, "..", "shared", "datasets");
const CACHE = join(BENCH_ROOT, ".cache", "bench-embeddings");
const DENSE_WEIGHTS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];

interface Doc {
  id: number;
  title: string;
  text: string;
}
interface Query {
  id: number;
  query: string;
  qrels: Record<string, number>;
}
export interface Metrics {
  ndcg10: number;
  recall10: number;
  map100: number;
}
export interface QualityRow extends Metrics {
  collection: string;
  system: string;
  p50Ms?: number;
  p99Ms?: number;
}

/** One system under test: a search request shape (query and k filled in per query). */
interface System {
  name: string;
  request: Omit<SearchRequest, "query" | "k">;
  timed?: boolean;
}

function systems(): System[] {
  const { dense, bm25 } = DEFAULT_FUSION.weights;
  const list: System[] = [
    { name: "dense", request: { mode: "dense" }, timed: true },
    { name: "bm25", request: { mode: "bm25" }, timed: true },
    { name: "hybrid rrf (1:1)", request: { mode: "hybrid", fusion: "rrf", weights: { dense: 1, bm25: 1 } }, timed: true },
    { name: `hybrid weighted (${dense}:${bm25})`, request: { mode: "hybrid", fusion: "weighted", weights: { dense, bm25 } }, timed: true },
    { name: "hybrid default", request: { mode: "hybrid" } },
    { name: "bm25 + rm3", request: { mode: "bm25", expansion: "rm3" }, timed: true },
    { name: "hybrid default + rm3", request: { mode: "hybrid", expansion: "rm3" }, timed: true },
    { name: "hybrid rrf (1:1) + rm3", request: { mode: "hybrid", fusion: "rrf", weights: { dense: 1, bm25: 1 }, expansion: "rm3" }, timed: true },
  ];
  for (const w of DENSE_WEIGHTS) list.push({ name: `sweep weighted dense ${w}`, request: { mode: "hybrid", fusion: "weighted", weights: { dense: w, bm25: 1 - w } } });
  for (const w of DENSE_WEIGHTS) list.push({ name: `sweep rrf dense ${w}`, request: { mode: "hybrid", fusion: "rrf", weights: { dense: w, bm25: 1 - w } } });
  return list;
}

/** Runs the collection's converter: docs.jsonl, queries.jsonl, and the baseline line it prints. */
export function convert(collection: string, out: string): { docs: Doc[]; queries: Query[]; baseline: Metrics } {
  const run = spawnSync("python3", [join(DATASETS, collection, "to_jsonl.py"), out], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`${collection} converter failed: ${run.stderr}`);
  const printed = JSON.parse(run.stdout.trim().split("\n").pop()!) as Record<string, number>;
  const lines = (f: string) => readFileSync(join(out, f), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  return {
    docs: lines("docs.jsonl") as Doc[],
    queries: (lines("queries.jsonl") as Query[]).filter((q) => Object.keys(q.qrels).length > 0),
    baseline: { ndcg10: printed["bm25_ndcg@10"], recall10: printed["bm25_recall@10"], map100: printed["bm25_map@100"] },
  };
}

/** Binary gains, log2 discount; recall over the top 10; average precision over the top 100. */
export function score(ranked: string[], relevant: Set<string>): Metrics {
  const dcg = ranked.slice(0, 10).reduce((s, d, i) => s + (relevant.has(d) ? 1 / Math.log2(i + 2) : 0), 0);
  let idcg = 0;
  for (let i = 0; i < Math.min(10, relevant.size); i++) idcg += 1 / Math.log2(i + 2);
  let hits = 0;
  let ap = 0;
  ranked.slice(0, 100).forEach((d, i) => {
    if (relevant.has(d)) ap += ++hits / (i + 1);
  });
  return { ndcg10: dcg / idcg, recall10: ranked.slice(0, 10).filter((d) => relevant.has(d)).length / relevant.size, map100: ap / relevant.size };
}

/** USE Lite with an on-disk cache of vectors by text hash (one file per embedder id: hash, then the floats). */
function cachedEmbedder(base: Embedder): Embedder & { save(): void } {
  mkdirSync(CACHE, { recursive: true });
  const file = join(CACHE, `${base.id.replace(/[^A-Za-z0-9._-]/g, "_")}.bin`);
  const entry = 32 + 4 * base.dimension;
  const cache = new Map<string, Float32Array>();
  if (existsSync(file)) {
    const bytes = readFileSync(file);
    for (let o = 0; o + entry <= bytes.length; o += entry) {
      const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset + o + 32, bytes.byteOffset + o + entry));
      cache.set(bytes.subarray(o, o + 32).toString("hex"), floats);
    }
  }
  let added = false;
  const key = (t: string) => createHash("sha256").update(t).digest("hex");
  return {
    ...base,
    countTokens: base.countTokens?.bind(base),
    async embed(texts) {
      const keys = texts.map(key);
      const missing = [...new Set(keys.filter((k) => !cache.has(k)))];
      if (missing.length > 0) {
        const byKey = new Map(keys.map((k, i) => [k, texts[i]]));
        const vectors = await base.embed(missing.map((k) => byKey.get(k)!));
        missing.forEach((k, i) => cache.set(k, vectors[i]));
        added = true;
      }
      return keys.map((k) => cache.get(k)!);
    },
    save() {
      if (!added) return;
      const out = Buffer.alloc(cache.size * entry);
      let o = 0;
      for (const [k, v] of cache) {
        out.write(k, o, "hex");
        Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(out, o + 32);
        o += entry;
      }
      writeFileSync(file, out);
    },
  };
}

async function ingest(kb: KnowledgeBase, docs: Doc[], log: (done: number) => void): Promise<Map<string, string>> {
  const policy = ingestPolicy({ settings: {}, limits: {} });
  const external = new Map<string, string>();
  // Batches of 500: one ingestion job each, whose small documents share embedding calls.
  for (let i = 0; i < docs.length; i += 500) {
    const part = docs.slice(i, i + 500);
    const uploads = part.map((d) => ({ bytes: new TextEncoder().encode(d.text.trim() || d.title.trim() || `document ${d.id}`), fileName: `${d.id}.txt`, title: d.title || `document ${d.id}` }));
    for (const item of await kb.uploadBatch("bench", uploads, policy)) {
      if (!item.ok) throw new Error(`document ${part[item.upload].id} refused: ${item.error.message}`);
      external.set(item.document.id, String(part[item.upload].id));
    }
    log(i + part.length);
  }
  await kb.idle();
  return external;
}

async function evaluate(collection: string, embedder: Embedder & { save(): void }): Promise<{ rows: QualityRow[]; baseline: Metrics; docs: number; queries: number; chunks: number }> {
  const work = mkdtempSync(join(tmpdir(), `bench-quality-${collection}-`));
  try {
    const { docs, queries, baseline } = convert(collection, join(work, "data"));
    const store = openDatabase(join(work, "switchyard.db"));
    store.db.insert(tenants).values({ id: "bench", name: "bench" }).run();
    // Batches queue their ingestion back to back, so the index is saved once for the whole collection.
    const kb = await createKnowledgeBase({ db: store.db, sqlite: store.sqlite, dataDir: work, embedder, embedBatchSize: 64, inlineBytes: 0 });
    const started = performance.now();
    const external = await ingest(kb, docs, (n) => process.stderr.write(`  ${collection}: ${n}/${docs.length} documents\n`));
    embedder.save();
    const chunks = store.sqlite.prepare("SELECT count(*) FROM chunks").pluck().get() as number;
    process.stderr.write(`  ${collection}: ${docs.length} documents, ${chunks} chunks in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    const rows: QualityRow[] = [{ collection, system: "baseline (README, plain BM25)", ...baseline }];
    for (const system of systems().filter((s) => !KEYWORD_ONLY || s.request.mode === "bm25")) {
      const sums: Metrics = { ndcg10: 0, recall10: 0, map100: 0 };
      const times: number[] = [];
      for (const q of queries) {
        const t0 = performance.now();
        const hits = await kb.search("bench", { ...system.request, query: q.query, k: 100, groupBy: "document" });
        times.push(performance.now() - t0);
        const m = score(hits.map((h) => external.get(h.documentId)!), new Set(Object.keys(q.qrels)));
        sums.ndcg10 += m.ndcg10;
        sums.recall10 += m.recall10;
        sums.map100 += m.map100;
      }
      const n = queries.length;
      const timing = system.timed ? { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) } : {};
      rows.push({ collection, system: system.name, ndcg10: sums.ndcg10 / n, recall10: sums.recall10 / n, map100: sums.map100 / n, ...timing });
    }
    embedder.save();
    await kb.close();
    store.close();
    return { rows, baseline, docs: docs.length, queries: queries.length, chunks };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** BENCH_QUALITY_KEYWORD_ONLY=1: bm25 systems only, with a constant stand-in embedder (no USE Lite run, no embeddings cache needed). */
const KEYWORD_ONLY = process.env.BENCH_QUALITY_KEYWORD_ONLY === "1";
const constantEmbedder = (): Embedder => ({ id: "constant-8", dimension: 8, embed: async (texts) => texts.map(() => Float32Array.from({ length: 8 }, (_, i) => (i === 0 ? 1 : 0))) });

export async function benchRetrievalQuality(collections = ["cisi", "cacm"]): Promise<void> {
  // SWITCHYARD_EMBEDDING_INT8 as the platform reads it (0 / 1), else the platform's default.
  const int8 = process.env.SWITCHYARD_EMBEDDING_INT8 === undefined ? USE_LITE_INT8_BY_DEFAULT : ["1", "true"].includes(process.env.SWITCHYARD_EMBEDDING_INT8);
  const use = KEYWORD_ONLY ? constantEmbedder() : await createUseLiteEmbedder({ int8 });
  const embedder = cachedEmbedder(use);
  const all: QualityRow[] = [];
  const sizes: Record<string, { docs: number; queries: number; chunks: number }> = {};
  try {
    for (const c of collections) {
      const { rows, docs, queries, chunks } = await evaluate(c, embedder);
      all.push(...rows);
      sizes[c] = { docs, queries, chunks };
    }
  } finally {
    await use.close?.();
  }
  const f = (x: number | undefined, d = 4) => (x === undefined ? "" : x.toFixed(d));
  const table = all.map((r) => ({
    collection: r.collection, system: r.system, "nDCG@10": f(r.ndcg10), "recall@10": f(r.recall10), "MAP@100": f(r.map100),
    "p50 ms": f(r.p50Ms, 1), "p99 ms": f(r.p99Ms, 1),
  }));
  report("retrieval-quality", table, {
    embedder: use.id, defaultFusion: DEFAULT_FUSION, collections: sizes, results: all, loadAverage: loadavg(), cpus: cpus().length,
    notes: ["k 100 documents per query (group_by document); query latency is kb.search end to end with a cached query embedding"],
  });
  for (const c of KEYWORD_ONLY ? [] : collections) {
    const rows = all.filter((r) => r.collection === c);
    const get = (s: string) => rows.find((r) => r.system === s)!;
    const best = Math.max(get("dense").ndcg10, get("bm25").ndcg10);
    const hybrid = get("hybrid default").ndcg10;
    console.log(`${c}: hybrid default nDCG@10 ${hybrid.toFixed(4)} vs max(dense, bm25) ${best.toFixed(4)}: ${hybrid >= best ? "met" : "NOT met"}; bm25 ${get("bm25").ndcg10.toFixed(4)} vs baseline ${rows[0].ndcg10.toFixed(4)}: ${get("bm25").ndcg10 > rows[0].ndcg10 ? "met" : "NOT met"}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await benchRetrievalQuality(process.argv[2]?.split(",").filter(Boolean));
}
