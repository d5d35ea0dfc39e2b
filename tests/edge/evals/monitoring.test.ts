/**
 * Monitoring through the real server (stories260k, SQLite, the real chat pipeline and eval runs), on
 * an injected clock (no sleeps): production feedback on served chat completions (streaming and not)
 * with its summary; a monitor whose baseline runs with a near-base adapter fires when the tenant's
 * default is switched to a clearly worse random adapter (threshold and significant regression), with
 * a webhook received by a local HTTP server and its HMAC signature checked here independently; the
 * Prometheus series; input drift of in-distribution vs unrelated prompts; tenant isolation (404).
 */
import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { uploadRandomAdapter } from "../chat/fixtures.ts";

let clock = Date.UTC(2026, 0, 5, 12);
let p: TestPlatform;
let key: string;
let tenantId: string;
let otherKey: string;
let hooks: Server;
const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_WEBHOOK_ALLOW_PRIVATE: "1" }, { now: () => clock }); // the receiver is on loopback
  ({ key, tenantId } = await createTenantWithKey(p, "watched"));
  ({ key: otherKey } = await createTenantWithKey(p, "other"));
  hooks = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(0, "127.0.0.1", resolve));
});
afterAll(async () => {
  await p.stop();
  await new Promise((resolve) => hooks.close(resolve));
});

async function chat(k: string, body: Record<string, unknown>) {
  const res = await p.call("POST", "/v1/chat/completions", { key: k, json: { max_tokens: 12, temperature: 0, ...body } });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`chat failed: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const user = (content: string) => [{ role: "user", content }];

interface Check {
  id: string;
  run: string;
  status: string;
  adapter: string | null;
  baseline: boolean;
  metrics: Record<string, number>;
}

async function metricsText() {
  return (await p.call("GET", "/metrics")).text();
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 2000; i++) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("timed out waiting");
}

describe("production feedback", () => {
  it("rates served completions (streamed too), one rating each, reported per adapter and strategy; 404 across tenants", async () => {
    const plain = await chat(key, { messages: user("Once upon a time"), strategy: "prompt" });
    const streamed = await p.call("POST", "/v1/chat/completions", { key, json: { messages: user("The cat"), max_tokens: 6, stream: true, strategy: "prompt" } });
    const streamedId = /"id":"(chatcmpl-[^"]+)"/.exec(await streamed.text())![1]!;

    const rate = (id: string, json: unknown, k = key) => p.call("POST", `/v1/chat/completions/${id}/feedback`, { key: k, json });
    const first = await rate(plain.id, { rating: "up", comment: "nice" });
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ id: plain.id, object: "chat.completion.feedback", rating: "up", comment: "nice", strategy: "prompt", adapter: null });
    expect((await rate(plain.id, { rating: "down" })).status).toBe(200); // replaces the first
    expect((await rate(streamedId, { rating: "up" })).status).toBe(200);

    expect((await rate(plain.id, { rating: "up" }, otherKey)).status).toBe(404);
    expect((await rate("chatcmpl-nope", { rating: "up" })).status).toBe(404);
    const bad = await rate(plain.id, { rating: "meh" });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.type).toBe("invalid_request_error");

    const summary = await (await p.call("GET", "/v1/feedback/summary?group_by=adapter,strategy&bucket=day", { key })).json();
    const day = Math.floor(Date.now() / 86_400_000) * 86_400;
    expect(summary.data).toEqual([{ bucket_start: day, adapter: null, strategy: "prompt", up: 1, down: 1, rated: 2, up_rate: 0.5 }]);
    expect((await (await p.call("GET", "/v1/feedback/summary", { key: otherKey })).json()).data).toEqual([]);
    expect((await p.call("GET", "/v1/feedback/summary?group_by=model", { key })).status).toBe(400);
    expect(await metricsText()).toMatch(new RegExp(`switchyard_feedback_total\\{tenant="${tenantId}",adapter="",strategy="prompt",rating="down"\\} 1`));
  });
});

const PROMPTS = ["Once upon a time", "The little dog", "Lily wanted to", "One day, Tom", "The sun was", "A big red ball", "Mom said", "The bird flew", "Tim and Sue", "In the park"];
let goodId: string;
let badId: string;

describe("monitors", () => {
  let monitorId: string;
  let secret: string;

  it("fires its alert when the served adapter is replaced by a worse one, and signs the webhook", async () => {
    // References are the base model's own greedy answers: a near-base adapter matches them, a loud random one does not.
    const items = [];
    for (const prompt of PROMPTS) items.push({ messages: user(prompt), reference: (await chat(key, { messages: user(prompt), strategy: "prompt" })).choices[0].message.content });
    goodId = await uploadRandomAdapter(p, key, "good", 5, 1e-4);
    badId = await uploadRandomAdapter(p, key, "bad", 6, 0.5);
    expect((await p.call("POST", `/v1/adapters/${goodId}/default`, { key })).status).toBe(200);
    const ds = await (await p.call("POST", "/v1/evals/datasets", { key, json: { name: "watch", content: items.map((i) => JSON.stringify(i)).join("\n") } })).json();

    const url = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;
    const created = await p.call("POST", "/v1/evals/monitors", { key, json: { dataset: ds.id, every: "1h", arm: { strategy: "adapter", sampling: { max_tokens: 12 } }, thresholds: { tokenF1: 0.6 }, metrics: ["tokenF1"], webhook: { url } } });
    expect(created.status).toBe(201);
    const monitor = await created.json();
    expect(monitor).toMatchObject({ object: "eval.monitor", every_seconds: 3600, baseline_run: null, webhook: { url, signature_header: "Switchyard-Signature" } });
    monitorId = monitor.id;
    secret = monitor.webhook.secret;
    expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect((await (await p.call("GET", `/v1/evals/monitors/${monitorId}`, { key })).json()).webhook.secret).toBeUndefined();

    // Creating it ran its first check at once: the baseline, with the good adapter.
    const history = (k = 1) => until(async () => (await (await p.call("GET", `/v1/evals/monitors/${monitorId}/history`, { key })).json()).data, (d: Check[]) => d.length === k && d.every((c) => c.status !== "running"));
    const [baseline] = await history(1);
    expect(baseline).toMatchObject({ status: "succeeded", baseline: true, adapter: "good@1" });
    expect(baseline.metrics.tokenF1).toBeGreaterThan(0.9);
    expect((await (await p.call("GET", `/v1/evals/monitors/${monitorId}`, { key })).json()).baseline_run).toBe(baseline.run);
    await p.platform.monitors!.tick(); // not due yet: nothing new
    expect(await history(1)).toHaveLength(1);

    // The tenant deploys the bad adapter; an hour later the next check runs against it.
    expect((await p.call("POST", `/v1/adapters/${badId}/default`, { key })).status).toBe(200);
    clock += 3_600_000;
    await p.platform.monitors!.tick();
    const [, worse] = await history(2);
    expect(worse).toMatchObject({ status: "succeeded", baseline: false, adapter: "bad@1" });
    expect(worse.metrics.tokenF1).toBeLessThan(baseline.metrics.tokenF1 - 0.3);

    const alerts = (await (await p.call("GET", `/v1/evals/monitors/${monitorId}/alerts`, { key })).json()).data;
    const byKind = Object.fromEntries(alerts.map((a: { kind: string }) => [a.kind, a]));
    expect(Object.keys(byKind).sort()).toEqual(["regression", "threshold"]);
    expect(byKind.regression).toMatchObject({ metric: "tokenF1", adapter: "bad@1", check: worse.id, delivery: { status: "delivered", http_status: 204 } });
    expect(byKind.regression.p).toBeLessThan(0.05);
    expect(byKind.regression.baseline).toBeCloseTo(baseline.metrics.tokenF1, 10);
    expect(byKind.threshold).toMatchObject({ threshold: 0.6, value: worse.metrics.tokenF1 });

    // One signed delivery: HMAC-SHA256(secret, "t.body"), recomputed here with node:crypto.
    expect(received).toHaveLength(1);
    const [hook] = received;
    const header = String(hook!.headers["switchyard-signature"]);
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header)!;
    expect(Number(t)).toBe(Math.floor(clock / 1000));
    expect(v1).toBe(createHmac("sha256", secret).update(`${t}.${hook!.body}`).digest("hex"));
    expect(createHmac("sha256", "whsec_wrong").update(`${t}.${hook!.body}`).digest("hex")).not.toBe(v1);
    const payload = JSON.parse(hook!.body);
    expect(payload).toMatchObject({ type: "monitor.alert", monitor: { id: monitorId }, check: { id: worse.id, run: worse.run } });
    expect(payload.alerts.map((a: { id: string }) => a.id).sort()).toEqual(alerts.map((a: { id: string }) => a.id).sort());

    const text = await metricsText();
    const labels = `tenant="${tenantId}",adapter="bad@1",monitor="${monitorId}"`;
    expect(text).toContain(`switchyard_monitor_alerting{${labels}} 1`);
    expect(text).toContain(`switchyard_monitor_alerts_total{${labels},kind="regression"} 1`);
    expect(text).toContain(`switchyard_monitor_alerting{tenant="${tenantId}",adapter="good@1",monitor="${monitorId}"} 0`);
  });

  it("keeps tenants apart and refuses bad monitors with OpenAI-shaped 4xx", async () => {
    for (const path of ["", "/history", "/alerts"]) expect((await p.call("GET", `/v1/evals/monitors/${monitorId}${path}`, { key: otherKey })).status).toBe(404);
    expect((await p.call("DELETE", `/v1/evals/monitors/${monitorId}`, { key: otherKey })).status).toBe(404);
    expect((await (await p.call("GET", "/v1/evals/monitors", { key: otherKey })).json()).data).toEqual([]);
    expect((await (await p.call("GET", "/v1/evals/monitors", { key })).json()).data.map((m: { id: string }) => m.id)).toEqual([monitorId]);

    const bad = async (json: unknown, status: number) => {
      const res = await p.call("POST", "/v1/evals/monitors", { key, json });
      expect({ json, status: res.status }).toEqual({ json, status });
      return (await res.json()).error;
    };
    expect((await bad({ dataset: "evalset_nope", every: "1h" }, 404)).param).toBe("dataset");
    const ds = (await (await p.call("GET", "/v1/evals/datasets", { key })).json()).data[0].id;
    expect((await bad({ dataset: ds, every: "5s" }, 400)).param).toBe("every");
    expect((await bad({ dataset: ds, every: "1h", webhook: { url: "ftp://x" } }, 400)).param).toContain("webhook");
    expect((await bad({ dataset: ds, every: "1h", arm: { strategy: "adapter", adapter: "missing" } }, 404)).code).toBe("model_not_found");
    const [, worse] = (await (await p.call("GET", `/v1/evals/monitors/${monitorId}/history`, { key })).json()).data;
    expect((await p.call("POST", `/v1/evals/monitors/${monitorId}/baseline`, { key: otherKey, json: { run: worse.run } })).status).toBe(404);
    expect((await p.call("POST", `/v1/evals/monitors/${monitorId}/baseline`, { key, json: { run: "evalrun_nope" } })).status).toBe(404);
    const pinned = await p.call("POST", `/v1/evals/monitors/${monitorId}/baseline`, { key, json: { run: worse.run } });
    expect(await pinned.json()).toMatchObject({ baseline_run: worse.run, baseline_pinned: true });

    // Its test set deleted, the next check fails saying why instead of vanishing.
    expect((await p.call("DELETE", `/v1/evals/datasets/${ds}`, { key })).status).toBe(200);
    clock += 3_600_000;
    await p.platform.monitors!.tick();
    const last = (await (await p.call("GET", `/v1/evals/monitors/${monitorId}/history`, { key })).json()).data.at(-1);
    expect(last).toMatchObject({ status: "failed", run: null });
    expect(last.error).toContain("no longer exists");
    expect((await p.call("DELETE", `/v1/evals/monitors/${monitorId}`, { key })).status).toBe(200);
    expect((await p.call("GET", `/v1/evals/monitors/${monitorId}`, { key })).status).toBe(404);
  });
});

const STORY = ["Tell me a story about a little cat who finds a ball.", "Tell me a story about a dog who plays in the park.", "Write a story about a girl named Lily and her toy.", "Tell me a story about a boy who sees a big bird.", "Write a short story about a happy frog in the pond.", "Tell me a story about a bunny who shares a carrot."];
const UNRELATED = ["What is the capital gains tax rate for corporate bonds?", "Explain the eigenvalues of a Hermitian matrix.", "How do I configure BGP routing on a Cisco router?", "Summarise the quarterly earnings report of the bank.", "What dosage of ibuprofen is safe for adults?", "Compile the Rust crate with link-time optimisation."];

describe("input drift", () => {
  it("is low for prompts like the training data's and clearly higher for unrelated ones, per adapter, as a gauge too", async () => {
    const lines = STORY.map((q, i) => JSON.stringify({ messages: [{ role: "user", content: q }, { role: "assistant", content: `Once upon a time there was story ${i}.` }] }));
    const form = new FormData();
    form.set("purpose", "fine-tune");
    form.set("file", new File([lines.join("\n")], "train.jsonl", { type: "application/jsonl" }));
    const file = await (await p.call("POST", "/v1/files", { key, body: form })).json();
    expect(file.id).toMatch(/^file/);
    const drift = async () => {
      const res = await p.call("GET", `/v1/evals/drift?adapter=good&training_file=${file.id}&window=4`, { key });
      expect(res.status).toBe(200);
      return res.json();
    };
    const inDistribution = ["Tell me a story about a small cat and her ball.", "Write a story about a dog named Max in the park.", "Tell me a story about a girl who finds a toy bunny.", "Write a story about a frog and a bird."];
    for (const q of inDistribution) await chat(key, { messages: user(q), model: "good", max_tokens: 2 });
    const low = await drift();
    expect(low).toMatchObject({ object: "eval.drift", adapter: "good@1", prompts: 4, training_examples: STORY.length });
    for (const q of UNRELATED.slice(0, 4)) await chat(key, { messages: user(q), model: "good", max_tokens: 2 });
    const high = await drift();
    expect(high.prompts).toBe(4);
    expect(high.drift).toBeGreaterThan(low.drift + 0.1);
    expect(high.drift).toBeGreaterThan(2 * low.drift);
    expect(await metricsText()).toContain(`switchyard_input_drift{tenant="${tenantId}",adapter="good@1"} ${high.drift}`);

    // The other tenant cannot read this tenant's file or adapter.
    const other = await p.call("GET", `/v1/evals/drift?adapter=good&training_file=${file.id}`, { key: otherKey });
    expect(other.status).toBe(404);
    expect((await p.call("GET", `/v1/evals/drift?adapter=good`, { key })).status).toBe(400); // no job produced it: name the file
  });
});
