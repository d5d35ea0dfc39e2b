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
