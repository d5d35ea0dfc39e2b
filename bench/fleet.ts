/**
 * Fleet benchmark: real `switchyard serve inference` processes on loopback behind a Node edge
 * (`--inference-url`), stories260k. For one node, and for three nodes with rendezvous placement and
 * with random placement: 64 concurrent clients, each chatting (non-streamed, 8 tokens) with one of 30
 * adapters picked at random, for chats/s, latency p50/p99, errors, and the adapter-cache hit rate summed
 * over the nodes (each configuration gets 30 fresh adapters, so every one starts cold; a miss is a
 * request that found its adapter not loaded on its node: the load, or a wait on a load under way).
 * The nodes' caches hold every adapter, so the hit rate shows the loads placement costs, not evictions. Then the edge's added latency per hop: sequential chats through the edge against the
 * same encode + generate sent straight to a node. The edge and the load run in this process; the
 * machine's cores are shared by all of it and reported. Run: `npm run bench -- fleet`; writes
 * bench-results/fleet.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { HttpInference } from "../clients/inference.ts";
import { rendezvousOrder } from "../clients/rendezvous.ts";
import { loadConfig } from "../hosts/node/config.ts";
import { startPlatform, type Platform } from "../hosts/node/server.ts";
import { randomPeftAdapter } from "../services/adapters/synthetic.ts";
import { createRandom } from "../services/inference/sampler.ts";
import { BENCH_ROOT, percentile, report } from "./report.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const ADAPTERS = Number(process.env.BENCH_ADAPTERS ?? 30);
const CHATS_PER_CLIENT = Number(process.env.BENCH_CHATS_PER_CLIENT ?? 6);
const OUTPUT_TOKENS = 8;
const HOP_SAMPLES = 30;
const ADMIN = "bench-admin-key-0123456789";
const SECRET = "bench-node-secret-0123456789";
const STORIES = { numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 };
const MODEL = process.env.SWITCHYARD_MODEL ?? "stories260k";

interface Node {
  url: string;
  child: ChildProcess;
}

function startNode(dataDir: string): Promise<Node> {
  const child = spawn(process.execPath, [join(BENCH_ROOT, "bin/switchyard.mjs"), "serve", "inference"], {
    cwd: BENCH_ROOT,
    env: { ...process.env, SWITCHYARD_NODE_SECRET: SECRET, SWITCHYARD_MODEL: MODEL, SWITCHYARD_LOG_LEVEL: "info", SWITCHYARD_HOST: "127.0.0.1", SWITCHYARD_PORT: "0", SWITCHYARD_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let buffer = "";
    let url: string | undefined;
    child.once("exit", (code) => reject(new Error(`inference node exited (${code})`)));
    child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "switchyard node listening") url = entry.url;
        if (entry.msg === "plane ready" && url) resolve({ url, child });
      }
    });
  });
}

async function stopNode(node: Node): Promise<void> {
  if (node.child.exitCode !== null) return;
  const exited = new Promise((r) => node.child.once("exit", r));
  node.child.kill("SIGTERM");
  await exited;
}

async function call(url: string, path: string, key: string, init: { method?: string; json?: unknown; body?: FormData } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${url}${path}`, { method: init.method ?? "POST", headers, body: init.body ?? JSON.stringify(init.json) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** A tenant with `ADAPTERS` fresh adapters; their names and ids. */
async function setUp(edge: string, label: string): Promise<{ key: string; adapters: { name: string; id: string }[] }> {
  const tenant = (await call(edge, "/v1/admin/tenants", ADMIN, { json: { name: `bench-${label}` } })).body;
  const key = (await call(edge, `/v1/admin/tenants/${tenant.id}/keys`, ADMIN, { json: {} })).body.key as string;
  const adapters = [];
  for (let i = 0; i < ADAPTERS; i++) {
    const { files } = randomPeftAdapter(STORIES, { rank: 8, seed: i + 1 });
    const form = new FormData();
    form.append("name", `${label}-${i}`);
    form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
    form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
    const { status, body } = await call(edge, "/v1/adapters", key, { body: form });
    if (status !== 201) throw new Error(`adapter upload: ${status} ${JSON.stringify(body)}`);
    adapters.push({ name: body.name as string, id: body.id as string });
  }
  return { key, adapters };
}

/** Cache hits and misses of these adapters, summed over the nodes. */
async function cacheCounts(nodes: Node[], ids: Set<string>): Promise<{ hits: number; misses: number }> {
  const out = { hits: 0, misses: 0 };
  for (const node of nodes) {
    const text = await (await fetch(`${node.url}/metrics`)).text();
    for (const m of text.matchAll(/^switchyard_adapter_cache_(hits|misses)_total\{adapter="([^"]+)"\} (\d+)/gm)) {
      if (ids.has(m[2]!)) out[m[1] as "hits" | "misses"] += Number(m[3]);
    }
  }
  return out;
}

function startEdge(dataDir: string, nodes: Node[], routing: "rendezvous" | "random"): Promise<Platform> {
  return startPlatform(
    loadConfig({
      SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_PORT: "0", SWITCHYARD_LOG_LEVEL: "warn", SWITCHYARD_ADMIN_KEY: ADMIN, SWITCHYARD_MODEL: MODEL,
      SWITCHYARD_REQUESTS_PER_MINUTE: "0", SWITCHYARD_TRAINER: "off", SWITCHYARD_NODE_SECRET: SECRET,
      SWITCHYARD_INFERENCE_URL: nodes.map((n) => n.url).join(","), SWITCHYARD_FLEET_ROUTING: routing,
    }),
    { announce: () => {} },
  );
}

/** One chat; `error` is its status and code, or the connection failure (@hono/node-server can drop a keep-alive connection after an early error). */
async function chat(edge: string, key: string, model: string, seed: number): Promise<{ ok: boolean; ms: number; error?: string }> {
  const started = performance.now();
  try {
    const res = await fetch(`${edge}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Tell me a story." }], max_tokens: OUTPUT_TOKENS, temperature: 1, seed }),
    });
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
    const ms = performance.now() - started;
    return res.status === 200 ? { ok: true, ms } : { ok: false, ms, error: `${res.status} ${body.error?.code ?? ""}` };
  } catch (err) {
    return { ok: false, ms: performance.now() - started, error: String((err as { cause?: { code?: string } }).cause?.code ?? err) };
  }
}

async function runConfig(dataDir: string, nodes: Node[], routing: "rendezvous" | "random", label: string) {
  const platform = await startEdge(dataDir, nodes, routing);
  try {
    const { key, adapters } = await setUp(platform.url, label);
    const ids = new Set(adapters.map((a) => a.id));
    const random = createRandom(7); // uniform in [0, 1)
    const before = await cacheCounts(nodes, ids);
    const started = performance.now();
    const samples = (await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
      const mine = [];
      for (let i = 0; i < CHATS_PER_CLIENT; i++) mine.push(await chat(platform.url, key, adapters[Math.floor(random() * adapters.length)]!.name, c * 1000 + i));
      return mine;
    }))).flat();
    const seconds = (performance.now() - started) / 1000;
    const after = await cacheCounts(nodes, ids);
    const hits = after.hits - before.hits;
    const misses = after.misses - before.misses;
    const ok = samples.filter((s) => s.ok);
    const errorKinds: Record<string, number> = {};
    for (const s of samples) if (s.error) errorKinds[s.error] = (errorKinds[s.error] ?? 0) + 1;
    if (Object.keys(errorKinds).length > 0) console.log(`${label}: errors`, errorKinds);
    const metrics = await (await fetch(`${platform.url}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(metrics)?.[1] ?? 0);
    return {
      nodes: nodes.length, routing: nodes.length === 1 ? "-" : routing, chats: samples.length, errors: samples.length - ok.length,
      "chats/s": ok.length / seconds, "p50 ms": percentile(ok.map((s) => s.ms), 50), "p99 ms": percentile(ok.map((s) => s.ms), 99),
      "hit rate %": (100 * hits) / Math.max(1, hits + misses), "cache misses": misses, spills: gauge("switchyard_fleet_spills"), retries: gauge("switchyard_fleet_retries"),
    };
  } finally {
    await platform.close();
  }
}

/** Sequential base-model chats through the edge, and the same encode + generate sent straight to the node the edge picks. */
async function hop(dataDir: string, nodes: Node[]) {
  const platform = await startEdge(dataDir, nodes, "rendezvous");
  try {
    const { key } = await setUp(platform.url, "hop");
    // The node the edge sends base-model chats to: the first in the base model's rendezvous order.
    const target = rendezvousOrder(nodes.map((n) => n.url), "", (u) => u)[0]!;
    const direct = new HttpInference({ url: target, secret: SECRET });
    const messages = [{ role: "user" as const, content: "Tell me a story." }];
    const viaEdge: number[] = [];
    const straight: number[] = [];
    for (let i = 0; i < HOP_SAMPLES; i++) {
      viaEdge.push((await chat(platform.url, key, "stories260k", i)).ms);
      const started = performance.now();
      const prompt = await direct.encode({ candidates: [{ messages }], reserve: OUTPUT_TOKENS });
      for await (const _ of direct.generate({ promptTokens: prompt.tokens, params: { maxTokens: OUTPUT_TOKENS, temperature: 1, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, seed: i, stop: [] } })) void _;
      straight.push(performance.now() - started);
    }
    const p50 = (v: number[]) => percentile(v, 50);
    return { "edge p50 ms": p50(viaEdge), "direct p50 ms": p50(straight), "added p50 ms": p50(viaEdge) - p50(straight), "edge p99 ms": percentile(viaEdge, 99), "direct p99 ms": percentile(straight, 99) };
  } finally {
    await platform.close();
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "sy-bench-fleet-"));
const nodes: Node[] = [];
try {
  // The first node applies the migrations and compiles the model; the others find both done. The edge
  // is started per configuration on the same data dir, so the nodes lease the adapters it catalogs.
  nodes.push(await startNode(dataDir));
  nodes.push(...(await Promise.all([startNode(dataDir), startNode(dataDir)])));
  const rows = [];
  rows.push(await runConfig(dataDir, nodes.slice(0, 1), "rendezvous", "one"));
  rows.push(await runConfig(dataDir, nodes, "rendezvous", "rendezvous"));
  rows.push(await runConfig(dataDir, nodes, "random", "random"));
  const hopRow = await hop(dataDir, nodes);
  console.log("edge hop (sequential chats, one node):", hopRow);
  report("fleet", rows, {
    clients: CLIENTS, adapters: ADAPTERS, chatsPerClient: CHATS_PER_CLIENT, outputTokens: OUTPUT_TOKENS, hop: hopRow,
    cores: availableParallelism(), loadAverage: loadavg(),
    note: "edge, load generator and every node share these cores",
    goal: { hitRatePercentWithRouting: 90, errors: 0 },
  });
  console.log(`cores: ${availableParallelism()} (shared by the edge, the load and ${nodes.length} nodes), load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
} finally {
  await Promise.all(nodes.map(stopNode));
  rmSync(dataDir, { recursive: true, force: true });
}
