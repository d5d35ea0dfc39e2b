/**
 * The playground on Workers: the edge serves playground/ from wrangler's [assets] binding, and the
 * blind-compare preference pairs are stored in D1 (migration 0009), kept per tenant.
 */
import { SELF } from "cloudflare:test";
import { expect, it } from "vitest";
import { call, tenantWithKey } from "./helpers.ts";

it("serves the playground page from the assets binding through the edge", async () => {
  const res = await SELF.fetch("https://edge.test/");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
  expect(await res.text()).toContain('<script type="module" src="/ui/app.js"></script>');
  const script = await SELF.fetch("https://edge.test/ui/api.js");
  expect(script.status).toBe(200);
  expect(script.headers.get("content-type")).toContain("javascript");
  expect(await script.text()).toContain("sessionStorage");
  expect((await SELF.fetch("https://edge.test/ui/missing.js")).status).toBe(404);
});

it("stores preference pairs in D1, counts win rates and keeps tenants apart", async () => {
  const a = await tenantWithKey("prefs-a");
  const b = await tenantWithKey("prefs-b");
  const pair = { messages: [{ role: "user", content: "Hi" }], chosen: { arm: "rag", content: "Hello" }, rejected: { arm: "prompt", content: "Hm" } };
  const stored = await call("POST", "/v1/preferences", a.auth, pair);
  expect(stored.status).toBe(201);
  expect((await call("GET", "/v1/preferences/stats", a.auth)).json.data).toEqual([
    { arm: "prompt", wins: 0, losses: 1, rated: 1, win_rate: 0 },
    { arm: "rag", wins: 1, losses: 0, rated: 1, win_rate: 1 },
  ]);
  expect((await call("GET", `/v1/preferences/${stored.json.id}`, b.auth)).status).toBe(404);
  expect((await call("GET", "/v1/preferences", b.auth)).json.data).toEqual([]);
});
