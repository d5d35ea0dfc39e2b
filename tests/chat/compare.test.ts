import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";
import { addDocument, uploadRandomAdapter } from "./fixtures.ts";

let p: TestPlatform;
let key: string;
const messages = [{ role: "user", content: "Where does the purple dragon Zorblat live?" }];

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
    const res = await p.call("POST", "/v1/compare", { key, json: { messages, max_tokens: 12, temperature: 0, reference: "Zorblat lives in Quexville." } });
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
