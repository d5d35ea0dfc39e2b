/** Defects the fuzz found, pinned down by name so they stay fixed. */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  key = (await createTenantWithKey(p, "regressions")).key;
  await p.call("POST", "/v1/knowledge/documents", { key, json: { title: "Refunds", text: "Refunds are paid within 14 days." } });
});
afterAll(async () => {
  await p.stop();
});

// Found by the fuzz (seed 7): the empty retrieval query reached the knowledge base, whose refusal became a 500.
it("a RAG chat whose user messages hold no text answers without sources instead of a 500", async () => {
  for (const content of [null, "", "   "]) {
    const res = await p.call("POST", "/v1/chat/completions", {
      key,
      json: { strategy: "rag", messages: [{ role: "system", content: "Be brief." }, { role: "user", content }], max_tokens: 2 },
    });
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.switchyard).toMatchObject({ strategy: "rag", sources: [] });
  }
  const compare = await p.call("POST", "/v1/compare", { key, json: { strategies: ["rag", "prompt"], messages: [{ role: "assistant", content: null }], max_tokens: 2 } });
  const results = (await compare.json()).results as Array<{ strategy: string; error?: unknown }>;
  expect(compare.status).toBe(200);
  expect(results.map((r) => [r.strategy, r.error ?? null])).toEqual([["rag", null], ["prompt", null]]);
});
