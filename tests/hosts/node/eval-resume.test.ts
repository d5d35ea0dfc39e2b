/**
 * kill -9 of the server mid evaluation run, and a second server on the same data dir: a real
 * `switchyard start` (tests/helpers/server-child.ts) runs an 8-item × 2-arm run on stories260k; once a
 * few items' results are stored (the run's progress, polled) the process is SIGKILLed; a second process
 * resumes the run (the event "Resuming: N of 16 results already stored.", with N the rows on disk at the
 * kill, and no second "Started") and finishes it. The finished item × arm results are not run again:
 *   - their stored rows are unchanged, byte for byte (a re-run's latencies would differ);
 *   - each item × arm records the tenant's usage once as it completes, so the usage counts 16 requests,
 *     plus at most the arms of the one item in flight at the kill (completed, not yet stored), where a
 *     re-run of the stored ones would add at least N more.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, expect, it } from "vitest";
import { childTenant, freshDataDir, removeDataDir, spawnServer, type ServerChild } from "../../helpers/server-child.ts";

const ITEMS = 8;
const ARMS = [{ strategy: "prompt", sampling: { max_tokens: 32 } }, { strategy: "prompt", sampling: { temperature: 0.7, seed: 1, max_tokens: 32 } }];
const TOTAL = ITEMS * ARMS.length;

const dataDir = freshDataDir();
const servers: ServerChild[] = [];

afterAll(async () => {
  for (const s of servers) if (s.alive()) await s.kill9();
  removeDataDir(dataDir);
});

async function start(): Promise<ServerChild> {
  const s = await spawnServer({ dataDir, env: { SWITCHYARD_REQUESTS_PER_MINUTE: "0" } });
  servers.push(s);
  return s;
}

/** The run's stored results on disk, by "item:arm" (the JSON as stored). */
function storedRows(runId: string): Map<string, string> {
  const db = new Database(join(dataDir, "switchyard.db"), { readonly: true });
  try {
    const rows = db.prepare("select item, arm, result from eval_results where run_id = ?").all(runId) as Array<{ item: number; arm: number; result: string }>;
    return new Map(rows.map((r) => [`${r.item}:${r.arm}`, r.result]));
  } finally {
    db.close();
  }
}

it("resumes a run after kill -9 in a new process, without running its finished items again", async () => {
  const t0 = performance.now();
  const first = await start();
  const tStarted = performance.now();
  const { key } = await childTenant(first, "eval-resume");
  const lines = Array.from({ length: ITEMS }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `Tell story number ${i} about a dog.` }], reference: "The dog was happy." })).join("\n");
  const dataset = await (await first.call("POST", "/v1/evals/datasets", { key, json: { name: "dogs", content: lines } })).json();
  const run = await (await first.call("POST", "/v1/evals/runs", { key, json: { dataset: dataset.id, arms: ARMS } })).json();
  expect(run.progress).toMatchObject({ done: 0, total: TOTAL });

  // Kill once at least two items' results are stored (more than the arms one item has in flight).
  for (let done = 0; done < 2 * ARMS.length; ) {
    done = (await (await first.call("GET", `/v1/evals/runs/${run.id}`, { key })).json()).progress.done;
    await new Promise((r) => setTimeout(r, 10));
  }
  await first.kill9();
  const atKill = storedRows(run.id);
  expect(atKill.size).toBeGreaterThanOrEqual(2 * ARMS.length);
  expect(atKill.size).toBeLessThan(TOTAL); // killed mid-run

  const tKilled = performance.now();
  const second = await start();
  const tRestarted = performance.now();
  let finished;
  for (const deadline = Date.now() + 120_000; ; ) {
    finished = await (await second.call("GET", `/v1/evals/runs/${run.id}`, { key })).json();
    if (finished.status !== "running" && finished.status !== "queued") break;
    if (Date.now() > deadline) throw new Error(`the run did not finish: ${JSON.stringify(finished)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(finished).toMatchObject({ status: "succeeded", progress: { done: TOTAL, total: TOTAL } });

  const events = (await (await second.call("GET", `/v1/evals/runs/${run.id}/events`, { key })).json()).data.map((e: { message: string }) => e.message);
  expect(events).toContain(`Resuming: ${atKill.size} of ${TOTAL} results already stored.`);
  expect(events.filter((m: string) => m.startsWith("Started:"))).toHaveLength(1);
  expect(events.at(-1)).toBe("Finished.");

  const after = storedRows(run.id);
  expect(after.size).toBe(TOTAL);
  for (const [k, result] of atKill) expect(after.get(k)).toBe(result);

  const usage = await (await second.call("GET", "/v1/usage", { key })).json();
  const s = (a: number, b: number) => `${((b - a) / 1000).toFixed(1)} s`;
  console.log(
    `eval kill -9: ${atKill.size} of ${TOTAL} stored at the kill; ${usage.total.requests} requests recorded in all; ` +
      `first start ${s(t0, tStarted)}, to the kill ${s(tStarted, tKilled)}, second start ${s(tKilled, tRestarted)}, to the end ${s(tRestarted, performance.now())}`,
  );
  expect(usage.total.requests).toBeGreaterThanOrEqual(TOTAL);
  expect(usage.total.requests).toBeLessThanOrEqual(TOTAL + ARMS.length);

  const report = await (await second.call("GET", `/v1/evals/runs/${run.id}/report`, { key })).json();
  expect(report.arms.map((a: { result_counts: { total: number; errored: number } }) => a.result_counts)).toEqual(ARMS.map(() => expect.objectContaining({ total: ITEMS, errored: 0 })));
  await second.stop();
}, 240_000);
