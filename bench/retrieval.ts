/**
 * Retrieval benchmark: ingest throughput with USE Lite embeddings (parse, chunk, embed, SQLite +
 * FTS5, hnswlib), query latency p50/p99 per mode and hnswlib recall@10 against exact search, on
 * 10k and 100k chunks.
 *
 * Embedding 100k chunks with USE Lite on two cores would take many minutes, so ingest is measured
 * on a sample; the 10k/100k collections reuse the sample's real embeddings: each further chunk
 * splices the texts of two sample chunks and takes the normalised sum of their vectors.
 *
 * Ingest is also measured with the opt-in int8 USE Lite (DynamicQuantizeMatMul).
 *
 *   npx tsx bench/retrieval.ts          (prints a table, writes bench-results/retrieval.json)
 *   RETRIEVAL_BENCH_SIZES=10000 npx tsx bench/retrieval.ts
 *
 * Then the quality part, bench/retrieval-quality.ts (nDCG@10, recall@10, MAP@100 on CISI and CACM).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ingestPolicy } from "../edge/tenant-settings.ts";
import { benchRetrievalQuality } from "./retrieval-quality.ts";
import { createUseLiteEmbedder, useLiteModelDir } from "../services/retrieval/embedders/use-lite.ts";
import { createKnowledgeBase, type KnowledgeBase } from "../services/retrieval/knowledge-base.ts";
import type { Embedder, SearchMode } from "../services/retrieval/types.ts";
import { DEFAULT_HNSW, VectorIndex } from "../services/retrieval/vector-index.ts";
import { openDatabase, type OpenDatabase } from "../services/store/db.ts";
import { tenants } from "../services/store/schema.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MODES: SearchMode[] = ["dense", "bm25", "hybrid"];
const EF_SWEEP = [128, 256, 512, 1024];

export interface RetrievalBenchOptions {
  sizes?: number[];
  /** Chunks embedded for real (the ingest measurement and the vector pool). */
  ingestSample?: number;
  queries?: number;
}

export interface ScaleResult {
  chunks: number;
  buildSeconds: number;
  latencyMs: Record<SearchMode, { p50: number; p99: number }>;
  /** At the default ef, through kb.search. */
  recallAt10: number;
  ef: number;
  recallByEf: Record<number, number>;
}

export interface RetrievalBenchResult {
  embedder: string;
  hnsw: typeof DEFAULT_HNSW;
  ingest: { chunks: number; tokensPerChunk: number; chunksPerSecond: number; embeddingOnlyChunksPerSecond: number; int8ChunksPerSecond: number };
  queryEmbeddingMs: number;
  scales: ScaleResult[];
  notes: string[];
  /** Other work on the machine skews every timing: recorded with the results. */
  loadAverage: number[];
  cpus: number;
}

/** Seeded PRNG (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Topic-structured English-word text: each chunk mixes two topics' vocabularies with common words. */
class SyntheticCorpus {
  private readonly rand = random(42);
  private readonly words: string[];
  private readonly topics: string[][];

  constructor(topicCount = 300) {
    const vocab = JSON.parse(readFileSync(join(useLiteModelDir(), "vocab.json"), "utf8")) as Array<[string, number]>;
    this.words = vocab.map(([p]) => p).filter((p) => /^▁[a-z]{3,}$/.test(p)).map((p) => p.slice(1));
    this.topics = Array.from({ length: topicCount }, () => Array.from({ length: 25 }, () => this.pick(this.words)));
  }

  chunk(): string {
    const [a, b] = [this.pick(this.topics), this.pick(this.topics)];
    const sentences = Array.from({ length: 5 }, () => {
      const n = 8 + Math.floor(this.rand() * 6);
      const words = Array.from({ length: n }, () => (this.rand() < 0.6 ? this.pick(this.rand() < 0.7 ? a : b) : this.pick(this.words)));
      return words.join(" ").replace(/^./, (c) => c.toUpperCase()) + ".";
    });
    return sentences.join(" ");
  }

  query(): string {
    const topic = this.pick(this.topics);
    return Array.from({ length: 3 + Math.floor(this.rand() * 3) }, () => this.pick(topic)).join(" ");
  }

  pick<T>(list: T[]): T {
    return list[Math.floor(this.rand() * list.length)];
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const jsonl = (texts: string[]) => new TextEncoder().encode(texts.map((text, i) => JSON.stringify({ id: i, text })).join("\n"));

async function openKb(dir: string, embedder: Embedder): Promise<{ kb: KnowledgeBase; store: OpenDatabase }> {
  const store = openDatabase(join(dir, "switchyard.db"));
  store.db.insert(tenants).values({ id: "bench", name: "bench" }).run();
  const kb = await createKnowledgeBase({ db: store.db, sqlite: store.sqlite, dataDir: dir, embedder });
  return { kb, store };
}

/** Uploads `texts` as JSONL documents of `perDocument` records (one chunk per record); returns seconds. */
async function ingest(kb: KnowledgeBase, texts: string[], perDocument: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < texts.length; i += perDocument) {
    await kb.upload("bench", { bytes: jsonl(texts.slice(i, i + perDocument)), fileName: `part${i}.jsonl` }, ingestPolicy({ settings: {}, limits: {} }));
  }
  await kb.idle();
  const failed = (await kb.list("bench", { limit: 1000 })).find((d) => d.status !== "ready");
  if (failed) throw new Error(`ingest failed: ${failed.error}`);
  return (performance.now() - start) / 1000;
}

function normalise(v: Float32Array): Float32Array {
  const n = Math.hypot(...v) || 1;
  return v.map((x) => x / n);
}

export async function benchRetrieval(options: RetrievalBenchOptions = {}): Promise<RetrievalBenchResult> {
  const sizes = options.sizes ?? [10_000, 100_000];
  const sampleSize = options.ingestSample ?? 2000;
  const queryCount = options.queries ?? 200;
  const use = await createUseLiteEmbedder();
  const corpus = new SyntheticCorpus();
  const work = await mkdtemp(join(tmpdir(), "bench-retrieval-"));
  try {
    // 1. Ingest throughput, embedding included; the embeddings become the vector pool.
    const sample = Array.from({ length: sampleSize }, () => corpus.chunk());
    const pool = new Map<string, Float32Array>();
    const recording: Embedder = {
      ...use,
      embed: async (texts) => {
        const vectors = await use.embed(texts);
        texts.forEach((t, i) => pool.set(t, vectors[i]));
        return vectors;
      },
    };
    const ingestKb = await openKb(join(work, "ingest"), recording);
    await use.embed(sample.slice(0, 64)); // warm-up: first runs allocate
    const ingestSeconds = await ingest(ingestKb.kb, sample, 100);
    const chunkCount = ingestKb.store.sqlite.prepare("SELECT count(*) FROM chunks").pluck().get() as number;
    await ingestKb.kb.close();
    ingestKb.store.close();
    const int8 = await createUseLiteEmbedder({ int8: true });
    const int8Kb = await openKb(join(work, "ingest-int8"), int8);
    const int8Seconds = await ingest(int8Kb.kb, sample, 100);
    await int8Kb.kb.close();
    int8Kb.store.close();
    await int8.close?.();
    const embedStart = performance.now();
    await use.embed(sample.slice(0, 256));
    const embeddingOnly = 256 / ((performance.now() - embedStart) / 1000);
    const tokensPerChunk = sample.reduce((n, t) => n + use.countTokens!(t), 0) / sample.length;

    const queries = Array.from({ length: queryCount }, () => corpus.query());
    const queryStart = performance.now();
    const queryVectors = await Promise.all(queries.map(async (q) => (await use.embed([q]))[0]));
    const queryEmbeddingMs = (performance.now() - queryStart) / queries.length;

    // 2. Larger collections from the pool: spliced texts, summed vectors.
    const pooled = [...pool.entries()];
    const scales: ScaleResult[] = [];
    for (const size of sizes) {
      const vectors = new Map<string, Float32Array>();
      const pick = random(size);
      while (vectors.size < size) {
        // Three sample chunks, a third of each text, their vectors mixed with random weights.
        const parts = [0, 1, 2].map(() => pooled[Math.floor(pick() * pooled.length)]);
        const weights = parts.map(() => 0.2 + pick());
        const text = parts.map(([t], i) => t.slice(Math.floor((i * t.length) / 3), Math.floor(((i + 1) * t.length) / 3))).join(" ");
        const mixed = new Float32Array(use.dimension);
        parts.forEach(([, v], p) => v.forEach((x, d) => (mixed[d] += weights[p] * x)));
        vectors.set(text, normalise(mixed));
      }
      const lookup: Embedder = {
        ...use,
        id: use.id,
        embed: async (texts) => {
          const known = texts.map((t) => vectors.get(t));
          if (known.every((v) => v)) return known as Float32Array[];
          return use.embed(texts);
        },
      };
      const dir = join(work, `scale-${size}`);
      const { kb, store } = await openKb(dir, lookup);
      const texts = [...vectors.keys()];
      const buildSeconds = await ingest(kb, texts, 1000);
      const rows = store.sqlite.prepare("SELECT id, text FROM chunks").all() as Array<{ id: number; text: string }>;
      if (rows.length !== size) throw new Error(`expected ${size} chunks, stored ${rows.length}`);

      // Recall@10 of the HNSW index against exact cosine search over the same vectors.
      const matrix = rows.map((r) => vectors.get(r.text)!);
      let recallSum = 0;
      for (let q = 0; q < queries.length; q++) {
        const exact = exactTop(matrix, queryVectors[q], 10).map((i) => rows[i].id);
        const hits = await kb.search("bench", { query: queries[q], k: 10, mode: "dense" });
        const found = new Set(hits.map((h) => h.chunkId));
        recallSum += exact.filter((id) => found.has(id)).length / exact.length;
      }

      const latencyMs = {} as ScaleResult["latencyMs"];
      for (const mode of MODES) {
        for (const q of queries.slice(0, 20)) await kb.search("bench", { query: q, k: 10, mode });
        const times: number[] = [];
        for (const q of queries) {
          const t0 = performance.now();
          await kb.search("bench", { query: q, k: 10, mode });
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        latencyMs[mode] = { p50: percentile(times, 50), p99: percentile(times, 99) };
      }
      await kb.close();
      store.close();
      // Recall@10 at other ef values, from the saved index file.
      const saved = VectorIndex.load(join(dir, "indexes", "bench.hnsw"), use.id, use.dimension)!;
      const recallByEf: Record<number, number> = {};
      for (const ef of EF_SWEEP) {
        let sum = 0;
        for (let q = 0; q < queries.length; q++) {
          const exact = exactTop(matrix, queryVectors[q], 10).map((i) => rows[i].id);
          const found = new Set(saved.search(queryVectors[q], 10, undefined, ef).map((h) => h.label));
          sum += exact.filter((id) => found.has(id)).length / exact.length;
        }
        recallByEf[ef] = sum / queries.length;
      }
      scales.push({ chunks: size, buildSeconds, latencyMs, recallAt10: recallSum / queries.length, ef: DEFAULT_HNSW.efSearch, recallByEf });
      await rm(dir, { recursive: true, force: true });
    }
    return {
      embedder: use.id,
      hnsw: DEFAULT_HNSW,
      ingest: { chunks: chunkCount, tokensPerChunk, chunksPerSecond: chunkCount / ingestSeconds, embeddingOnlyChunksPerSecond: embeddingOnly, int8ChunksPerSecond: chunkCount / int8Seconds },
      queryEmbeddingMs,
      scales,
      loadAverage: loadavg(),
      cpus: cpus().length,
      notes: [
        `ingest measured end to end on ${chunkCount} synthetic chunks (${tokensPerChunk.toFixed(0)} USE tokens each): parse, chunk, USE Lite embedding, SQLite + FTS5, hnswlib, index save`,
        `the ${sizes.join(" and ")} chunk collections reuse the sample's real USE embeddings (a third of each of three sample chunks' texts; their vectors mixed with random weights and normalised); build time there excludes embedding`,
        "query latency is kb.search end to end, query embedding with USE Lite included",
      ],
    };
  } finally {
    await use.close?.();
    await rm(work, { recursive: true, force: true });
  }
}

/** Indices of the k rows with the highest dot product (vectors are unit length). */
function exactTop(matrix: Float32Array[], query: Float32Array, k: number): number[] {
  const scores = matrix.map((v, i) => {
    let dot = 0;
    for (let d = 0; d < v.length; d++) dot += v[d] * query[d];
    return [dot, i] as const;
  });
  return scores.sort((a, b) => b[0] - a[0]).slice(0, k).map(([, i]) => i);
}

function printTable(r: RetrievalBenchResult): void {
  const goal = (ok: boolean) => (ok ? "met" : "NOT met");
  console.log(`load average at the end: ${r.loadAverage.map((l) => l.toFixed(2)).join(" ")} on ${r.cpus} CPUs`);
  console.log(`embedder ${r.embedder}, hnsw M=${r.hnsw.m} efConstruction=${r.hnsw.efConstruction} ef=${r.hnsw.efSearch}`);
  console.log(`ingest: ${r.ingest.chunksPerSecond.toFixed(0)} chunks/s end to end (${r.ingest.chunks} chunks, ${r.ingest.tokensPerChunk.toFixed(0)} tokens each; embedding alone ${r.ingest.embeddingOnlyChunksPerSecond.toFixed(0)} chunks/s)  goal ≥ 200: ${goal(r.ingest.chunksPerSecond >= 200)}`);
  console.log(`ingest with int8 USE Lite (opt-in): ${r.ingest.int8ChunksPerSecond.toFixed(0)} chunks/s end to end  goal ≥ 200: ${goal(r.ingest.int8ChunksPerSecond >= 200)}`);
  console.log(`query embedding: ${r.queryEmbeddingMs.toFixed(2)} ms`);
  console.log("chunks    build s   recall@10   dense p50/p99 ms   bm25 p50/p99 ms   hybrid p50/p99 ms");
  for (const s of r.scales) {
    const l = (m: SearchMode) => `${s.latencyMs[m].p50.toFixed(2)} / ${s.latencyMs[m].p99.toFixed(2)}`.padEnd(19);
    console.log(`${String(s.chunks).padEnd(9)} ${s.buildSeconds.toFixed(1).padStart(7)}   ${s.recallAt10.toFixed(4).padEnd(11)} ${l("dense")}${l("bm25")}${l("hybrid")}`);
  }
  for (const s of r.scales) {
    console.log(`recall@10 by ef at ${s.chunks}: ${Object.entries(s.recallByEf).map(([ef, v]) => `ef=${ef} ${v.toFixed(4)}`).join(", ")}`);
  }
  const big = r.scales.find((s) => s.chunks >= 100_000);
  if (big) console.log(`goals at ${big.chunks}: recall@10 ≥ 0.98 ${goal(big.recallAt10 >= 0.98)}; hybrid p50 < 20 ms ${goal(big.latencyMs.hybrid.p50 < 20)}`);
  for (const n of r.notes) console.log(`note: ${n}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sizes = process.env.RETRIEVAL_BENCH_SIZES?.split(",").filter(Boolean).map(Number);
  const result = await benchRetrieval({ sizes });
  printTable(result);
  await mkdir(join(ROOT, "bench-results"), { recursive: true });
  await writeFile(join(ROOT, "bench-results", "retrieval.json"), JSON.stringify({ section: "retrieval", ...result }, null, 2) + "\n");
  // The quality part (also alone: `npm run bench -- retrieval quality`).
  await benchRetrievalQuality();
}
