/**
 * Ingest and query through the HTTP API of the real platform (USE Lite, SQLite + FTS5, hnswlib) on
 * loopback, with the CISI collection's documents (one document per abstract):
 * - single: `POST /v1/knowledge/documents`, one JSON document per request, each awaited;
 * - batch: `POST /v1/knowledge/documents/batch`, multipart, 100 documents per request, then
 *   `POST /v1/knowledge/documents/progress` polled until all are settled;
 * documents/s and chunks/s end to end (first request to last document ready), and the process's CPU
 * milliseconds per chunk (steadier on a shared machine), each run on a fresh
 * tenant, the two ways interleaved (single, batch, single, batch) since the machine is shared.
 * While batches ingest, `GET /health` is timed: the event loop's responsiveness with embedding on a
 * worker threads (the platform's default, one per core up to 4; BENCH_EMBED_THREADS) and, in a
 * second platform, on the loop (0). SWITCHYARD_EMBEDDING_INT8=0/1 picks the embedder (else the default).
 * Then query latency p50/p99 per mode (CISI queries, k 10) through `POST /v1/knowledge/search`.
 *
 *   npm run bench -- retrieval ingest        BENCH_INGEST_DOCS=600 (default) documents per run
 *   BENCH_INGEST_QUICK=1                     one batch run only (no single uploads, on-loop run or queries)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../hosts/node/config.ts";
import { startPlatform } from "../hosts/node/server.ts";
import { DEFAULT_EMBED_THREADS } from "../services/retrieval/embedders/worker-pool.ts";
import { convert } from "./retrieval-quality.ts";
import { percentile, report } from "./report.ts";

const DOCS = Number(process.env.BENCH_INGEST_DOCS ?? 600);
const BATCH = 100;
const QUICK = process.env.BENCH_INGEST_QUICK === "1";
const ADMIN = "bench-admin-key-0123456789";
const MODES = ["dense", "bm25", "hybrid"] as const;
/** The platform's default unless BENCH_EMBED_THREADS says. */
const THREADS = Number(process.env.BENCH_EMBED_THREADS ?? DEFAULT_EMBED_THREADS);

type Doc = { title: string; text: string };
type Platform = Awaited<ReturnType<typeof startPlatform>>;

async function call(platform: Platform, path: string, key: string, init: { method?: string; json?: unknown; body?: FormData } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${platform.url}${path}`, { method: init.method ?? "POST", headers, body: init.body ?? JSON.stringify(init.json) });
  const body = (await res.json()) as Record<string, any>;
  if (res.status >= 400) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(body.error)}`);
  return body;
}

async function tenantKey(platform: Platform, name: string): Promise<string> {
  const tenant = await call(platform, "/v1/admin/tenants", ADMIN, { json: { name } });
  return (await call(platform, `/v1/admin/tenants/${tenant.id}/keys`, ADMIN, { json: {} })).key as string;
}

interface IngestRun {
  way: "single" | "batch";
  embedThreads: number;
  documents: number;
  chunks: number;
  seconds: number;
  /** CPU time of this process (HTTP server, client and embedding threads) over the run: steadier than wall time on a shared machine. */
  cpuSeconds: number;
  healthP50Ms?: number;
  healthP99Ms?: number;
}

async function ingestSingle(platform: Platform, key: string, docs: Doc[]): Promise<{ chunks: number; seconds: number }> {
  const start = performance.now();
  let chunks = 0;
  for (const doc of docs) {
    const view = await call(platform, "/v1/knowledge/documents", key, { json: doc });
    if (view.status !== "ready") throw new Error(`document not ready after its upload: ${view.status}`);
    chunks += view.chunk_count as number;
  }
  return { chunks, seconds: (performance.now() - start) / 1000 };
}

/** Also times GET /health every 20 ms while the batches ingest. */
async function ingestBatch(platform: Platform, key: string, docs: Doc[]) {
  const health: number[] = [];
  let running = true;
  const prober = (async () => {
    while (running) {
      const t = performance.now();
      // A probe the loaded machine resets is not a result (and must not end the run).
      if (await fetch(`${platform.url}/health`).then((r) => r.arrayBuffer()).then(() => true, () => false)) health.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const start = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < docs.length; i += BATCH) {
    const form = new FormData();
    for (const [j, doc] of docs.slice(i, i + BATCH).entries()) form.append("file", new Blob([`# ${doc.title}\n\n${doc.text}`]), `doc${i + j}.md`);
    const body = await call(platform, "/v1/knowledge/documents/batch", key, { body: form });
    if (body.refused > 0) throw new Error(`batch refused documents: ${JSON.stringify(body.data.find((d: any) => d.error))}`);
    ids.push(...body.data.map((d: any) => d.document.id as string));
  }
  let chunks = 0;
  for (;;) {
    const progress = await call(platform, "/v1/knowledge/documents/progress", key, { json: { ids } });
    if (progress.done) {
      if (progress.counts.failed > 0) throw new Error("documents failed");
      chunks = progress.data.reduce((n: number, d: any) => n + d.chunk_count, 0);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - start) / 1000;
  running = false;
  await prober;
  health.sort((a, b) => a - b);
  return { chunks, seconds, healthP50Ms: percentile(health, 50), healthP99Ms: percentile(health, 99) };
}

async function withCpu<T extends object>(run: () => Promise<T>): Promise<T & { cpuSeconds: number }> {
  const before = process.cpuUsage();
  const result = await run();
  const { user, system } = process.cpuUsage(before);
  return { ...result, cpuSeconds: (user + system) / 1e6 };
}

async function withPlatform<T>(embedThreads: number, run: (p: Platform) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), "sy-bench-ingest-"));
  const platform = await startPlatform(
    loadConfig({
      SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_PORT: "0", SWITCHYARD_LOG_LEVEL: "warn", SWITCHYARD_ADMIN_KEY: ADMIN,
      SWITCHYARD_REQUESTS_PER_MINUTE: "0", SWITCHYARD_TRAINER: "off", SWITCHYARD_EMBED_THREADS: String(embedThreads),
      ...(process.env.SWITCHYARD_EMBEDDING_INT8 ? { SWITCHYARD_EMBEDDING_INT8: process.env.SWITCHYARD_EMBEDDING_INT8 } : {}),
    }),
    { announce: () => {} },
  );
  try {
    return await run(platform);
  } finally {
    await platform.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const work = mkdtempSync(join(tmpdir(), "sy-bench-cisi-"));
try {
  const { docs: all, queries } = convert("cisi", work);
  const docs = all.slice(0, DOCS).map((d) => ({ title: d.title, text: d.text || d.title }));
  const runs: IngestRun[] = [];
  const latency: Record<string, { p50: number; p99: number }> = {};
  await withPlatform(THREADS, async (platform) => {
    // A batch first: its calls are large enough to start the spare embedding threads.
    await ingestBatch(platform, await tenantKey(platform, "warm-up-batch"), docs.slice(0, 40));
    await ingestSingle(platform, await tenantKey(platform, "warm-up"), docs.slice(0, 20));
    let last = "";
    for (let round = 0; round < (QUICK ? 1 : 2); round++) {
      for (const way of QUICK ? (["batch"] as const) : (["single", "batch"] as const)) {
        const key = await tenantKey(platform, `${way}-${round}`);
        const result = await withCpu(() => (way === "single" ? ingestSingle(platform, key, docs) : ingestBatch(platform, key, docs)));
        runs.push({ way, embedThreads: THREADS, documents: docs.length, ...result });
        last = key;
      }
    }
    for (const mode of QUICK ? [] : MODES) {
      const times: number[] = [];
      for (const q of queries) {
        const t = performance.now();
        await call(platform, "/v1/knowledge/search", last, { json: { query: q.query.slice(0, 8000), k: 10, mode } });
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      latency[mode] = { p50: percentile(times, 50), p99: percentile(times, 99) };
    }
  });
  // The same batch ingest with embedding on the event loop: what the worker thread buys the loop.
  if (!QUICK) await withPlatform(0, async (platform) => {
    await ingestSingle(platform, await tenantKey(platform, "warm-up"), docs.slice(0, 20));
    const key = await tenantKey(platform, "on-loop");
    runs.push({ way: "batch", embedThreads: 0, documents: docs.length, ...(await withCpu(() => ingestBatch(platform, key, docs))) });
  });
  const rows: Record<string, string | number>[] = runs.map((r, i) => ({
    run: i + 1,
    way: r.way,
    embed_threads: r.embedThreads,
    documents: r.documents,
    chunks: r.chunks,
    "docs/s": +(r.documents / r.seconds).toFixed(1),
    "chunks/s": +(r.chunks / r.seconds).toFixed(1),
    "cpu ms/chunk": +((1000 * r.cpuSeconds) / r.chunks).toFixed(2),
    "health p50 ms": r.healthP50Ms === undefined ? "" : +r.healthP50Ms.toFixed(1),
    "health p99 ms": r.healthP99Ms === undefined ? "" : +r.healthP99Ms.toFixed(1),
  }));
  for (const mode of QUICK ? [] : MODES) rows.push({ run: "query", way: mode, "p50 ms": +latency[mode].p50.toFixed(1), "p99 ms": +latency[mode].p99.toFixed(1) });
  report("retrieval-ingest", rows, { runs, queryLatencyMs: latency, queries: queries.length, loadAverage: loadavg(), cpus: cpus().length, note: "shared machine: compare the interleaved runs" });
} finally {
  rmSync(work, { recursive: true, force: true });
}
