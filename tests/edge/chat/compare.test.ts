/**
 * POST /v1/compare against the real platform (stories260k, SQLite, hnswlib): the side-by-side answer with
 * its scores and per-strategy errors, and with stream: true the strategies' interleaved events, which
 * reassemble into the same answers; a failing strategy sends its error event while the others finish, and
 * a client that goes away cancels every strategy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { addDocument, uploadRandomAdapter } from "./fixtures.ts";

let p: TestPlatform;
let key: string;
const messages = [{ role: "user", content: "Where does the purple dragon Zorblat live?" }];
// Words stories260k tends to write, so the scores below are not all zero.
const reference = "Whiskers is a big cat. What is that? It is a good toy, she said.";

/** SQuAD v1.1 answer tokens, written out here apart from services/evaluation. */
const squadTokens = (text: string) =>
  text
    .toLowerCase()
    .replace(/[!-/:-@[-`{-~]/g, "")
    .replace(/\b(a|an|the)\b/g, " ")
    .split(/\s+/)
    .filter(Boolean);

/** Bag-of-tokens F1 (SQuAD's and ROUGE-1's shape) over the given tokens. */
function bagF1(prediction: string[], ref: string[]): number {
  const left = new Map<string, number>();
  for (const t of ref) left.set(t, (left.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of prediction) {
    const n = left.get(t) ?? 0;
    if (n > 0) (common++, left.set(t, n - 1));
  }
  if (common === 0) return 0;
  const [precision, recall] = [common / prediction.length, common / ref.length];
  return (2 * precision * recall) / (precision + recall);
}

/** rouge-score's tokens: lowercase, anything outside [a-z0-9] splits. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Event = Record<string, any>;

const rougeTokens = (text: string) => text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "compare"));
  await addDocument(p, key, "Dragons", "Zorblat the purple dragon lives in the mountain town of Quexville.");
});
afterAll(async () => {
  await p.stop();
});

describe("POST /v1/compare", () => {
  it("runs every strategy available to the tenant side by side, scored against a reference", async () => {
    const before = await (await p.call("POST", "/v1/compare", { key, json: { messages, max_tokens: 12, temperature: 0 } })).json();
    expect(before.results.map((r: { strategy: string }) => r.strategy)).toEqual(["prompt", "rag"]);

    const adapterId = await uploadRandomAdapter(p, key, "dragon-tuned", 3);
    const bad = await p.call("PATCH", "/v1/tenant", { key, json: { defaultAdapter: "no-such-adapter" } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe("defaultAdapter");
    const set = await (await p.call("PATCH", "/v1/tenant", { key, json: { defaultAdapter: "dragon-tuned" } })).json();
    expect(set.settings.defaultAdapter).toBe(adapterId); // stored as the id the name resolved to
    const res = await p.call("POST", "/v1/compare", { key, json: { messages, max_tokens: 12, temperature: 0, reference } });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.results.map((r: { strategy: string }) => r.strategy)).toEqual(["prompt", "rag", "adapter", "rag+adapter"]);
    for (const r of body.results) {
      expect(r.error).toBeNull();
      expect(typeof r.content).toBe("string");
      expect(r.usage.completion_tokens).toBeGreaterThan(0);
      expect(r.timings.total_ms).toBeGreaterThan(0);
      expect(Object.keys(r.scores).sort()).toEqual(
        (r.strategy.startsWith("rag") ? ["bleu", "contextSupport", "exactMatch", "rouge1", "rouge2", "rougeL", "tokenF1"] : ["bleu", "exactMatch", "rouge1", "rouge2", "rougeL", "tokenF1"]).sort(),
      );
    }
    // The scores are of each entry's own answer against the reference, recomputed here independently.
    for (const r of body.results) {
      expect(r.scores.tokenF1).toBeCloseTo(bagF1(squadTokens(r.content), squadTokens(reference)), 12);
      expect(r.scores.rouge1).toBeCloseTo(bagF1(rougeTokens(r.content), rougeTokens(reference)), 12);
      expect(r.scores.exactMatch).toBe(squadTokens(r.content).join(" ") === squadTokens(reference).join(" ") ? 1 : 0);
    }
    expect(body.results.filter((r: { scores: { tokenF1: number } }) => r.scores.tokenF1 > 0).length).toBeGreaterThan(0);
    const [prompt, rag, adapter, ragAdapter] = body.results;
    expect(prompt.sources).toEqual([]);
    expect(rag.sources[0].title).toBe("Dragons");
    expect(ragAdapter.sources[0].title).toBe("Dragons");
    expect(adapter.adapter).toBe("dragon-tuned@1");
    expect(prompt.adapter).toBeNull();
  });

  it("returns every strategy even when one fails, that entry carrying its error", async () => {
    const { key: plain } = await createTenantWithKey(p, "no-adapter");
    const body = await (await p.call("POST", "/v1/compare", { key: plain, json: { messages, max_tokens: 8, strategies: ["prompt", "adapter"] } })).json();
    expect(body.results).toHaveLength(2);
    expect(body.results[0]).toMatchObject({ strategy: "prompt", error: null });
    expect(body.results[1]).toMatchObject({ strategy: "adapter", content: null, error: { status: 400, code: "adapter_required", param: "strategy" } });
  });

  it("rejects a bad request as a whole", async () => {
    const res = await p.call("POST", "/v1/compare", { key, json: { messages, strategies: ["telepathy"] } });
    expect(res.status).toBe(400);
    expect((await res.json()).error.param).toBe("strategies.0");
  });
});

function post(apiKey: string, json: unknown, signal?: AbortSignal) {
  return fetch(`${p.url}/v1/compare`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: JSON.stringify(json), signal });
}

/** The `data:` payloads of a whole SSE body; the last must be [DONE]. */
function parseSse(text: string): { events: Event[]; done: boolean } {
  const data = text.split("\n\n").filter(Boolean).map((block) => block.split("\n").map((l) => l.replace(/^data: /, "")).join("\n"));
  return { events: data.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d)), done: data.at(-1) === "[DONE]" };
}

async function gauges(...names: string[]): Promise<number[]> {
  const text = await (await p.call("GET", "/metrics")).text(); // one reading: a sequence moves between gauges
  return names.map((name) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]));
}

async function gauge(name: string): Promise<number> {
  return (await gauges(name))[0]!;
}

/** Sequences running, or parked while this test reads the metrics instead of the stream. */
async function liveSequences(): Promise<number> {
  return (await gauges("switchyard_engine_running_sequences", "switchyard_engine_paused_sequences")).reduce((a, b) => a + b);
}

describe("POST /v1/compare with stream: true", () => {
  let key: string; // a tenant of its own, with a document and a default adapter
  beforeAll(async () => {
    ({ key } = await createTenantWithKey(p, "compare-stream"));
    await addDocument(p, key, "Dragons", "Zorblat the purple dragon lives in the mountain town of Quexville.");
    await uploadRandomAdapter(p, key, "dragon-tuned", 3);
    await p.call("PATCH", "/v1/tenant", { key, json: { defaultAdapter: "dragon-tuned" } });
  });

  it("interleaves the strategies' tokens, which reassemble into the non-streaming answers", async () => {
    const request = { messages, max_tokens: 24, temperature: 0, reference };
    const whole = await (await p.call("POST", "/v1/compare", { key, json: request })).json();
    const res = await post(key, { ...request, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const { events, done } = parseSse(await res.text());
    expect(done).toBe(true);

    const strategies = ["prompt", "rag", "adapter", "rag+adapter"];
    expect(events[0]).toMatchObject({ object: "compare.start", model: null, strategies });
    const chunks = events.filter((e) => e.object === "compare.chunk");
    for (const c of chunks) expect(c.strategy).toBe(strategies[c.index]);
    // Interleaved: the arms take turns rather than arriving one after another.
    const switches = chunks.filter((c, i) => i > 0 && c.index !== chunks[i - 1]!.index).length;
    expect(switches).toBeGreaterThan(strategies.length);

    strategies.forEach((strategy, index) => {
      const expected = whole.results[index];
      const text = chunks.filter((c) => c.index === index).map((c) => c.delta.content).join("");
      expect(text).toBe(expected.content);
      const final = events.filter((e) => e.object === "compare.done" && e.index === index);
      expect(final).toHaveLength(1);
      expect(final[0]).toMatchObject({ strategy, finish_reason: expected.finish_reason, usage: expected.usage, scores: expected.scores });
      const { strategy: s, adapter, sources, sources_dropped } = expected;
      expect(final[0]!.switchyard).toMatchObject({ strategy: s, adapter, sources, sources_dropped });
      expect(final[0]!.switchyard.timings.first_token_ms).toBeGreaterThan(0);
      expect(final[0]!.switchyard.timings.first_token_ms).toBeLessThanOrEqual(final[0]!.switchyard.timings.total_ms);
      // Every chunk of an arm comes before its final event.
      expect(events.findLastIndex((e) => e.object === "compare.chunk" && e.index === index)).toBeLessThan(events.indexOf(final[0]!));
    });
    expect(events.filter((e) => e.object === "compare.error")).toEqual([]);
  });

  it("is described in the OpenAPI document the app serves", async () => {
    const post = (await (await p.call("GET", "/openapi.json")).json()).paths["/v1/compare"].post;
    expect(Object.keys(post.responses["200"].content)).toEqual(["application/json", "text/event-stream"]);
    for (const object of ["compare.start", "compare.chunk", "compare.done", "compare.error", "[DONE]"]) expect(post.description).toContain(object);
    expect(post.requestBody.content["application/json"].schema.properties.stream).toBeDefined();
  });

  it("sends a failing strategy's error event while the others finish", async () => {
    const { key: plain } = await createTenantWithKey(p, "stream-no-adapter");
    const request = { messages, max_tokens: 8, temperature: 0, strategies: ["adapter", "prompt"] };
    const whole = await (await p.call("POST", "/v1/compare", { key: plain, json: request })).json();
    const { events, done } = parseSse(await (await post(plain, { ...request, stream: true })).text());
    expect(done).toBe(true);
    expect(events.filter((e) => e.object === "compare.error")).toEqual([
      { object: "compare.error", index: 0, strategy: "adapter", error: expect.objectContaining({ status: 400, code: "adapter_required", param: "strategy" }) },
    ]);
    expect(events.filter((e) => e.object === "compare.done").map((e) => [e.index, e.strategy])).toEqual([[1, "prompt"]]);
    const text = events.filter((e) => e.object === "compare.chunk").map((e) => (expect(e.index).toBe(1), e.delta.content)).join("");
    expect(text).toBe(whole.results[1].content);
  });

  it("a client that disconnects cancels every strategy's generation", async () => {
    const request = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 200, temperature: 1, seed: 2 };
    const before = await gauge("switchyard_engine_decode_steps");
    const whole = await (await p.call("POST", "/v1/compare", { key, json: request })).json();
    expect(whole.results.map((r: Event) => r.usage.completion_tokens)).toEqual([200, 200, 200, 200]); // this seed writes no end of text: the runs are long
    const fullRun = (await gauge("switchyard_engine_decode_steps")) - before;

    const abort = new AbortController();
    const start = await gauge("switchyard_engine_decode_steps");
    const res = await post(key, { ...request, stream: true }, abort.signal);
    const reader = res.body!.getReader();
    let received = "";
    const started = (index: number) => received.includes(`"index":${index},"strategy":`);
    while (![0, 1, 2, 3].every(started)) {
      const chunk = await reader.read();
      if (chunk.done) break;
      received += new TextDecoder().decode(chunk.value);
    }
    expect(received).not.toContain("compare.done");
    expect(await liveSequences()).toBe(4);
    abort.abort();

    await expect.poll(async () => (await liveSequences()) + (await gauge("switchyard_engine_waiting_requests")), { timeout: 30_000, interval: 10 }).toBe(0);
    const steps = (await gauge("switchyard_engine_decode_steps")) - start;
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThan(fullRun);
  });
});
