/**
 * Evaluations benchmark: the real platform (stories260k) over HTTP on loopback. A 100-item test set
 * (items naming their documents in a 20-document knowledge base) through the four strategies, 32
 * output tokens, greedy: items × arms per second of the background run (the EvalWorker, one completion
 * at a time), then the report build time (GET .../report and .../report.html, median of 5: reading the
 * results, the bootstrap intervals and permutation tests, the page).
 * Run: `npm run bench -- evals`; writes bench-results/evals.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../hosts/node/config.ts";
import { startPlatform } from "../hosts/node/server.ts";
import { randomPeftAdapter } from "../services/adapters/synthetic.ts";
import { report } from "./report.ts";

const ITEMS = Number(process.env.BENCH_EVAL_ITEMS ?? 100);
const OUTPUT_TOKENS = 32;
const ADMIN = "bench-admin-key-0123456789";
const ARMS = ["prompt", "rag", "adapter", "rag+adapter"].map((strategy) => ({ strategy, sampling: { max_tokens: OUTPUT_TOKENS } }));

const dataDir = mkdtempSync(join(tmpdir(), "sy-bench-evals-"));
const platform = await startPlatform(
  loadConfig({ SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_PORT: "0", SWITCHYARD_LOG_LEVEL: "warn", SWITCHYARD_ADMIN_KEY: ADMIN, SWITCHYARD_REQUESTS_PER_MINUTE: "0", SWITCHYARD_TRAINER: "off" }),
  { announce: () => {} },
);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(path: string, key: string, init: { method?: string; json?: unknown; body?: FormData } = {}): Promise<any> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${platform.url}${path}`, { method: init.method ?? (init.json || init.body ? "POST" : "GET"), headers, body: init.body ?? (init.json === undefined ? undefined : JSON.stringify(init.json)) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return res.headers.get("content-type")?.includes("json") ? res.json() : res.text();
}

async function setUpTenant(): Promise<string> {
  const tenant = await call("/v1/admin/tenants", ADMIN, { json: { name: "bench" } });
  const key = (await call(`/v1/admin/tenants/${tenant.id}/keys`, ADMIN, { json: {} })).key as string;
  const { files } = randomPeftAdapter({ numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 }, { rank: 16 });
  const form = new FormData();
  form.append("name", "bench-adapter");
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  await call("/v1/adapters", key, { body: form });
  await call("/v1/tenant", key, { method: "PATCH", json: { defaultAdapter: "bench-adapter" } });
  for (let i = 0; i < 20; i++) await call("/v1/knowledge/documents", key, { json: { title: `Story ${i}`, text: `Story ${i}: the little fox number ${i} found a shiny stone by the river and took it home.` } });
  return key;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  const key = await setUpTenant();
  const lines = Array.from({ length: ITEMS }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `What did the little fox number ${i % 20} find?` }], reference: `The little fox number ${i % 20} found a shiny stone by the river.`, relevant_documents: [`Story ${i % 20}`] }));
  const dataset = await call("/v1/evals/datasets", key, { json: { name: "bench", content: lines.join("\n") } });
  const started = performance.now();
  const run = await call("/v1/evals/runs", key, { json: { dataset: dataset.id, arms: ARMS } });
  let state = run;
  while (state.status === "queued" || state.status === "running") {
    await new Promise((r) => setTimeout(r, 50));
    state = await call(`/v1/evals/runs/${run.id}`, key);
  }
  const seconds = (performance.now() - started) / 1000;
  if (state.status !== "succeeded") throw new Error(`run ${state.status}: ${state.error}`);
  const timed = async (path: string) => {
    const ms: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await call(path, key);
      ms.push(performance.now() - t);
    }
    return median(ms);
  };
  const jsonMs = await timed(`/v1/evals/runs/${run.id}/report`);
  const htmlMs = await timed(`/v1/evals/runs/${run.id}/report.html`);
  const rep = await call(`/v1/evals/runs/${run.id}/report`, key);
  const rows = [
    { measure: "items × arms per second", value: state.progress.total / seconds, detail: `${state.progress.total} in ${seconds.toFixed(1)} s` },
    { measure: "report JSON build (ms, median of 5)", value: jsonMs, detail: `${rep.comparisons.length} comparisons` },
    { measure: "report HTML build (ms, median of 5)", value: htmlMs, detail: `${ITEMS} items drill-down` },
  ];
  report("evals", rows, { items: ITEMS, arms: ARMS.length, outputTokens: OUTPUT_TOKENS, errored: rep.arms.map((a: { label: string; result_counts: { errored: number } }) => [a.label, a.result_counts.errored]) });
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
