import { afterAll, beforeAll, expect, it } from "vitest";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

let p: TestPlatform;

beforeAll(async () => {
  p = await startTestPlatform();
});
afterAll(async () => {
  await p.stop();
});

it("charges tokens per minute and answers 429 with Retry-After once a tenant's budget is spent", async () => {
  const { tenantId, key } = await createTenantWithKey(p, "tokens");
  await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { limits: { tokensPerMinute: 40 } } });
  const chat = () => p.call("POST", "/v1/chat/completions", { key, json: { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 30, temperature: 0 } });
  const first = await chat();
  expect(first.status).toBe(200);
  const used = (await first.json()).usage.total_tokens;
  expect(used).toBeGreaterThan(30);
  const second = await chat();
  expect(second.status).toBe(429);
  expect((await second.json()).error).toMatchObject({ type: "rate_limit_error", code: "tokens_rate_limit_exceeded" });
  expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(0);
});
