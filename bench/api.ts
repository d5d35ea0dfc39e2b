/**
 * API benchmark: the real platform (stories260k) over HTTP on loopback. For each strategy, 64 concurrent
 * non-streaming chats of 32 output tokens: requests/s, latency p50/p99, errors, and the edge overhead
 * (the server's total time for a request minus the engine's and retrieval's time), for the engine in a
 * worker thread and on the edge's thread (SWITCHYARD_ENGINE_THREAD), one platform each, rounds interleaved.
 * Each platform runs in its own process (bench/platform-child.ts), so the load generated here never
 * shares the edge's event loop. Run: `npm run bench -- api` (BENCH_CLIENTS, BENCH_ROUNDS, BENCH_STRATEGIES,
 * BENCH_ENGINE_THREADS); writes bench-results/api.json.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomPeftAdapter } from "../services/adapters/synthetic.ts";
import { BENCH_ROOT, percentile, report } from "./report.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const OUTPUT_TOKENS = 32;
const ADMIN = "bench-admin-key-0123456789";
const STRATEGIES = (process.env.BENCH_STRATEGIES ?? "prompt,rag,adapter,rag+adapter").split(",");
const THREADS = (process.env.BENCH_ENGINE_THREADS ?? "worker,main").split(",") as ("worker" | "main")[];

interface Target {
  thread: (typeof THREADS)[number];
  url: string;
  dataDir: string;
  key: string;
  close(): Promise<void>;
}

async function startTarget(thread: Target["thread"]): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), `sy-bench-api-${thread}-`));
  const env = {
    SWITCHYARD_DATA_DIR: dataDir,
    SWITCHYARD_PORT: "0",
    SWITCHYARD_LOG_LEVEL: "warn",
    SWITCHYARD_ADMIN_KEY: ADMIN,
    SWITCHYARD_REQUESTS_PER_MINUTE: "0",
    SWITCHYARD_ENGINE_THREAD: thread,
  };
  const child = fork(join(BENCH_ROOT, "bench", "platform-child.ts"), [JSON.stringify(env)], { cwd: BENCH_ROOT, execArgv: ["--import", "tsx"] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("message", (message) => resolve((message as { url: string }).url));
    child.once("exit", (code) => reject(new Error(`the ${thread} platform exited (code ${code}) before it listened`)));
  });
  const close = () => new Promise<void>((resolve) => (child.once("exit", () => resolve()), child.send("close")));
  const target = { thread, url, dataDir, key: "", close };
  target.key = await setUpTenant(target.url);
  return target;
}

async function call(url: string, path: string, key: string, init: { method?: string; json?: unknown; body?: FormData } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${url}${path}`, { method: init.method ?? "POST", headers, body: init.body ?? JSON.stringify(init.json) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function setUpTenant(url: string): Promise<string> {
  const tenant = (await call(url, "/v1/admin/tenants", ADMIN, { json: { name: "bench" } })).body;
  const key = (await call(url, `/v1/admin/tenants/${tenant.id}/keys`, ADMIN, { json: {} })).body.key as string;
  const { files } = randomPeftAdapter({ numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 }, { rank: 16 });
  const form = new FormData();
  form.append("name", "bench-adapter");
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  await call(url, "/v1/adapters", key, { body: form });
  await call(url, "/v1/tenant", key, { method: "PATCH", json: { defaultAdapter: "bench-adapter" } });
  for (let i = 0; i < 20; i++) {
    await call(url, "/v1/knowledge/documents", key, { json: { title: `Story ${i}`, text: `Story ${i}: the little fox number ${i} found a shiny stone by the river and took it home.` } });
  }
  return key;
}

interface Sample {
  ok: boolean;
  latencyMs: number;
  edgeMs: number;
  tokens: number;
}

async function oneChat(target: Target, strategy: string, seed: number): Promise<Sample> {
  const started = performance.now();
  const res = await call(target.url, "/v1/chat/completions", target.key, {
    json: { messages: [{ role: "user", content: "Tell me about the little fox." }], strategy, max_tokens: OUTPUT_TOKENS, temperature: 1, seed, retrieval: { k: 2 } },
  });
  const latencyMs = performance.now() - started;
  if (res.status !== 200) return { ok: false, latencyMs, edgeMs: 0, tokens: 0 };
  const t = res.body.switchyard.timings;
  return { ok: true, latencyMs, edgeMs: t.total_ms - t.engine_ms - t.retrieval_ms, tokens: res.body.usage.completion_tokens };
}

const targets: Target[] = [];
try {
  for (const thread of THREADS) targets.push(await startTarget(thread));
  for (const target of targets) await Promise.all(STRATEGIES.map((s) => oneChat(target, s, 0))); // warm-up: adapter load, index
  const samples = new Map<string, Sample[]>();
  const seconds = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const strategy of STRATEGIES) {
      // Interleaved, the order flipped each round, so drift on a shared machine falls on both alike.
      for (const target of round % 2 ? [...targets].reverse() : targets) {
        const cell = `${target.thread} ${strategy}`;
        const started = performance.now();
        const batch = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => oneChat(target, strategy, round * CLIENTS + i)));
        seconds.set(cell, (seconds.get(cell) ?? 0) + (performance.now() - started) / 1000);
        samples.set(cell, [...(samples.get(cell) ?? []), ...batch]);
      }
    }
  }
  const rows = [];
  for (const strategy of STRATEGIES) {
    for (const target of targets) {
      const cell = `${target.thread} ${strategy}`;
      const all = samples.get(cell)!;
      const ok = all.filter((s) => s.ok);
      const time = seconds.get(cell)!;
      rows.push({
        strategy,
        engine: target.thread,
        requests: all.length,
        errors: all.length - ok.length,
        "req/s": ok.length / time,
        "tokens/s": ok.reduce((n, s) => n + s.tokens, 0) / time,
        "p50 ms": percentile(ok.map((s) => s.latencyMs), 50),
        "p99 ms": percentile(ok.map((s) => s.latencyMs), 99),
        "edge p50 ms": percentile(ok.map((s) => s.edgeMs), 50),
        "edge p99 ms": percentile(ok.map((s) => s.edgeMs), 99),
      });
    }
  }
  report("api", rows, { clients: CLIENTS, rounds: ROUNDS, outputTokens: OUTPUT_TOKENS, engineThreads: THREADS, goal: { edgeP50Ms: 2, errors: 0 } });
} finally {
  for (const target of targets) {
    await target.close();
    rmSync(target.dataDir, { recursive: true, force: true });
  }
}
