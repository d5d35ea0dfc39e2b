/**
 * Evaluations through the real server (stories260k, SQLite, hnswlib, the real chat pipeline): a test set
 * with a knowledge base run over prompt, rag and an arm whose adapter does not exist; the report's
 * aggregates against its own per-item scores, the RAG arm's retrieval recall against the items' named
 * documents, the errored arm; a restart mid-run that resumes without re-running stored items; tenant
 * isolation; and the HTML report in headless Chromium with every request refused.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../helpers/adapters.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { launchChromium } from "../../playground/browser.ts";
import { addDocument } from "../chat/fixtures.ts";

const FIXTURES = join(repoRoot, "tests/fixtures/evals");
const dataset = readFileSync(join(FIXTURES, "stories.jsonl"), "utf8");
const knowledge: { title: string; text: string }[] = JSON.parse(readFileSync(join(FIXTURES, "knowledge.json"), "utf8"));

let p: TestPlatform;
let key: string;
let otherKey: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "evals"));
  ({ key: otherKey } = await createTenantWithKey(p, "other"));
  for (const doc of knowledge) await addDocument(p, key, doc.title, doc.text);
});
afterAll(async () => {
  await p.stop();
});

async function upload(content: string, k = key) {
  return p.call("POST", "/v1/evals/datasets", { key: k, json: { name: "stories", content } });
}

async function finished(runId: string, k = key) {
  for (;;) {
    const run = await (await p.call("GET", `/v1/evals/runs/${runId}`, { key: k })).json();
    if (!["queued", "running"].includes(run.status)) return run;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("/v1/evals", () => {
  it("rejects a bad test set with the numbers of its bad lines, storing nothing", async () => {
    const bad = [dataset.split("\n")[0], '{"messages": [], "reference": "x"}', "not json", '{"messages": [{"role": "user", "content": "hi"}], "reference": "  "}'].join("\n");
    const res = await upload(bad);
    expect(res.status).toBe(400);
    const { error } = await res.json();
    expect(error.code).toBe("invalid_eval_file");
    expect(error.message).toContain("3 invalid lines");
    expect(error.message).toMatch(/line 2: messages.*line 3: not valid JSON.*line 4: reference/);
    expect((await (await p.call("GET", "/v1/evals/datasets", { key })).json()).data).toEqual([]);
  });

  let runId: string;
  let report: any; // eslint-disable-line @typescript-eslint/no-explicit-any

  it("runs every item through every arm: rag recall reflects the named documents, a missing adapter is errored", async () => {
    const created = await upload(dataset);
    expect(created.status).toBe(201);
    const ds = await created.json();
    expect(ds.item_count).toBe(4);
    expect(ds.items[2].line).toBe(3);
    const arms = [{ strategy: "prompt" }, { strategy: "rag", retrieval: { k: 2, mode: "bm25" } }, { strategy: "adapter", adapter: "no-such-adapter" }];
    const res = await p.call("POST", "/v1/evals/runs", { key, json: { dataset: ds.id, arms, thresholds: { tokenF1: 0.05 }, seed: 11 } });
    expect(res.status).toBe(201);
    const run = await res.json();
    expect(run.progress).toEqual({ done: 0, total: 12, percent: 0 });
    runId = run.id;
    const done = await finished(runId);
    expect(done.status).toBe("succeeded");
    expect(done.progress).toEqual({ done: 12, total: 12, percent: 100 });

    report = await (await p.call("GET", `/v1/evals/runs/${runId}/report`, { key })).json();
    const [prompt, rag, adapter] = report.arms;
    expect(report.arms.map((a: { label: string }) => a.label)).toEqual(["prompt", "rag", "adapter:no-such-adapter"]);
    expect(adapter.result_counts).toEqual({ total: 4, passed: 0, failed: 0, errored: 4 });
    expect(adapter.errors).toEqual({ model_not_found: 4 });
    expect(prompt.result_counts.errored + rag.result_counts.errored).toBe(0);

    // Retrieval scores only on the RAG arm and only for the items that name documents; recall is what
    // the sources give against those names, recomputed here.
    expect(prompt.metrics.recallAtK).toBeUndefined();
    expect(rag.metrics.recallAtK.n).toBe(3);
    const recalls = report.items.slice(0, 3).map((item: any) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const titles = new Set(item.results[1].sources.map((s: { title: string }) => s.title));
      return item.relevant_documents.filter((d: string) => titles.has(d)).length / item.relevant_documents.length;
    });
    expect(rag.metrics.recallAtK.mean).toBeCloseTo(recalls.reduce((a: number, b: number) => a + b, 0) / 3, 12);
    expect(rag.metrics.recallAtK.mean).toBe(1); // the distinctive names find their documents by bm25
    expect(report.items[0].results[1].sources[0].title).toBe("Dragons");
    expect(report.items[3].results[1].scores.recallAtK).toBeUndefined();
    expect(report.items[0].results[1].scores.contextSupport).toBeTypeOf("number");
    expect(report.items[0].results[0].scores.contextSupport).toBeUndefined();

    // Every aggregate is the mean of the per-item scores in the same report, inside its interval.
    for (const [a, arm] of [prompt, rag].entries()) {
      for (const [metric, summary] of Object.entries<{ mean: number; low: number; high: number; n: number }>(arm.metrics)) {
        const values = report.items.flatMap((item: any) => (item.results[a].scores[metric] === undefined ? [] : [item.results[a].scores[metric]])); // eslint-disable-line @typescript-eslint/no-explicit-any
        expect(summary.n).toBe(values.length);
        expect(summary.mean).toBeCloseTo(values.reduce((s: number, v: number) => s + v, 0) / values.length, 12);
        expect(summary.low).toBeLessThanOrEqual(summary.mean + 1e-12);
        expect(summary.high).toBeGreaterThanOrEqual(summary.mean - 1e-12);
      }
      const passes = report.items.filter((item: any) => item.results[a].scores.tokenF1 >= 0.05).length; // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(arm.result_counts.passed).toBe(passes);
      expect(arm.result_counts.failed).toBe(4 - passes);
      expect(arm.latency_ms.total.p50).toBeGreaterThan(0);
      expect(arm.tokens.completion.p50).toBeGreaterThan(0);
    }
    // prompt vs rag on every metric both have; the errored arm takes part in no comparison.
    expect(report.comparisons.every((c: { a: string; b: string }) => c.a === "prompt" && c.b === "rag")).toBe(true);
    expect(report.comparisons.length).toBe(6);
    for (const c of report.comparisons) expect(c.sentence === null).toBe(!c.significant);
    expect(report.reproducibility).toMatchObject({ model: "stories260k", seed: 11, switchyard_version: JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).version });
    const events = (await (await p.call("GET", `/v1/evals/runs/${runId}/events`, { key })).json()).data.map((e: { message: string }) => e.message);
    expect(events).toEqual(["Queued: 4 items × 3 arms.", "Started: 4 items × 3 arms.", "Finished."]);
  });

  it("keeps tenants apart: another tenant's datasets and runs answer 404", async () => {
    const datasets = (await (await p.call("GET", "/v1/evals/datasets", { key })).json()).data;
    const id = datasets[0].id;
    for (const [method, path] of [["GET", `/v1/evals/datasets/${id}`], ["DELETE", `/v1/evals/datasets/${id}`], ["GET", `/v1/evals/runs/${runId}`], ["GET", `/v1/evals/runs/${runId}/report`], ["GET", `/v1/evals/runs/${runId}/report.html`], ["GET", `/v1/evals/runs/${runId}/events`], ["POST", `/v1/evals/runs/${runId}/cancel`]] as const) {
      const res = await p.call(method, path, { key: otherKey });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    const run = await p.call("POST", "/v1/evals/runs", { key: otherKey, json: { dataset: id } });
    expect(run.status).toBe(404);
    expect((await (await p.call("GET", "/v1/evals/runs", { key: otherKey })).json()).data).toEqual([]);
    expect((await p.call("GET", `/v1/evals/datasets/${id}`, { key })).status).toBe(200);
  });

  it("the HTML report opens in headless Chromium with no network and shows every arm", async () => {
    const res = await p.call("GET", `/v1/evals/runs/${runId}/report.html`, { key });
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const html = await res.text();
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const context = await browser.newContext({ offline: true });
      const requests: string[] = [];
      await context.route("**/*", (route) => (requests.push(route.request().url()), route.abort()));
      const page = await context.newPage();
      await page.setContent(html, { waitUntil: "load" });
      expect(requests).toEqual([]);
      const legend = await page.locator(".legend span").allTextContents();
      expect(legend.map((t) => t.trim())).toEqual(report.arms.map((a: { label: string }) => a.label));
      const metrics = new Set(report.arms.flatMap((a: { metrics: object }) => Object.keys(a.metrics)));
      expect(await page.locator("svg[role=img]").count()).toBe(metrics.size); // one chart per metric
      expect(await page.locator("details").count()).toBe(4);
      await expect.poll(() => page.locator("td.err").count()).toBeGreaterThanOrEqual(4);
    } finally {
      await browser?.close();
    }
  });

  it("answers odd requests with OpenAI-shaped 4xx errors; an arm that cannot fit its prompt is errored", async () => {
    const ds = await (await upload(dataset)).json();
    const form = new FormData();
    form.append("name", "no file");
    for (const [method, path, json, status] of [
      ["POST", "/v1/evals/runs", { dataset: ds.id, arms: [] }, 400],
      ["POST", "/v1/evals/runs", { dataset: ds.id, arms: [{ strategy: "magic" }] }, 400],
      ["POST", "/v1/evals/runs", { dataset: ds.id, arms: [{ strategy: "prompt", sampling: { bogus: 1 } }] }, 400],
      ["POST", "/v1/evals/runs", { dataset: ds.id, thresholds: { nope: 0.5 } }, 400],
      ["POST", "/v1/evals/runs", { dataset: "evalset_nope" }, 404],
      ["GET", "/v1/evals/runs/evalrun_nope/report", undefined, 404],
      ["POST", "/v1/evals/datasets", { content: "" }, 400],
    ] as const) {
      const res = await p.call(method, path, { key, json });
      expect({ path, status: res.status }).toEqual({ path, status });
      expect((await res.json()).error.message).toBeTypeOf("string");
    }
    const noFile = await p.call("POST", "/v1/evals/datasets", { key, body: form });
    expect(noFile.status).toBe(400);
    const badAfter = await p.call("GET", `/v1/evals/runs/${runId}/events?after=x`, { key });
    expect(badAfter.status).toBe(400);

    const run = await (await p.call("POST", "/v1/evals/runs", { key, json: { dataset: ds.id, arms: [{ strategy: "prompt", sampling: { max_tokens: 1_000_000 } }] } })).json();
    const done = await finished(run.id);
    expect(done.status).toBe("succeeded");
    const rep = await (await p.call("GET", `/v1/evals/runs/${run.id}/report`, { key })).json();
    expect(rep.arms[0].result_counts.errored).toBe(4);
    expect(Object.keys(rep.arms[0].errors)).toEqual(["context_length_exceeded"]);
    expect(rep.arms[0].metrics).toEqual({});
    expect((await p.call("GET", `/v1/evals/runs/${run.id}/report.html`, { key })).status).toBe(200);
  });

  it("a restart mid-run resumes it without re-running the stored items", async () => {
    const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `Tell story number ${i} about a cat.` }], reference: "The cat was happy." })).join("\n");
    const ds = await (await upload(lines, otherKey)).json();
    const run = await (await p.call("POST", "/v1/evals/runs", { key: otherKey, json: { dataset: ds.id, arms: [{ strategy: "prompt" }, { strategy: "prompt", sampling: { temperature: 0.7, seed: 1 } }] } })).json();
    let before = 0;
    while (before < 4) {
      before = (await (await p.call("GET", `/v1/evals/runs/${run.id}`, { key: otherKey })).json()).progress.done;
      await new Promise((r) => setTimeout(r, 5));
    }
    await p.restart();
    const atRestart = (await (await p.call("GET", `/v1/evals/runs/${run.id}`, { key: otherKey })).json()).progress.done;
    expect(atRestart).toBeLessThan(60); // it was stopped mid-run
    const done = await finished(run.id, otherKey);
    expect(done.status).toBe("succeeded");
    expect(done.progress.done).toBe(60);
    // Each item × arm records usage once when it completes: a re-run of stored items would add to it.
    // The item in flight at the restart (its two arms run side by side) may have finished without being
    // stored; a re-run of the stored items would add at least 4 more.
    const usage = await (await p.call("GET", "/v1/usage", { key: otherKey })).json();
    expect(usage.total.requests).toBeGreaterThanOrEqual(60);
    expect(usage.total.requests).toBeLessThanOrEqual(62);
    const events = (await (await p.call("GET", `/v1/evals/runs/${run.id}/events`, { key: otherKey })).json()).data.map((e: { message: string }) => e.message);
    expect(events).toContain(`Resuming: ${atRestart} of 60 results already stored.`);
  });

  it("cancels a run; its stored results stay in the report", async () => {
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `Story ${i}` }], reference: "A story." })).join("\n");
    const ds = await (await upload(lines)).json();
    const run = await (await p.call("POST", "/v1/evals/runs", { key, json: { dataset: ds.id, arms: [{ strategy: "prompt" }] } })).json();
    const cancelled = await (await p.call("POST", `/v1/evals/runs/${run.id}/cancel`, { key })).json();
    expect(cancelled.status).toBe("cancelled");
    const settled = await finished(run.id);
    expect(settled.status).toBe("cancelled");
    await new Promise((r) => setTimeout(r, 200));
    const later = await (await p.call("GET", `/v1/evals/runs/${run.id}`, { key })).json();
    expect(later.progress.done).toBeLessThanOrEqual(settled.progress.done + 1);
    expect(later.progress.done).toBeLessThan(40);
    const rep = await (await p.call("GET", `/v1/evals/runs/${run.id}/report`, { key })).json();
    expect(rep.arms[0].result_counts.total).toBe(later.progress.done);
  });
});
