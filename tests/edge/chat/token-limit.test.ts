import { afterAll, beforeAll, expect, it } from "vitest";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

let p: TestPlatform;
/** The platform's rate-limit clock, moved by hand. */
const clock = { at: 1_800_000_000_000, now: () => clock.at };

beforeAll(async () => {
  p = await startTestPlatform({}, { now: clock.now });
});
afterAll(async () => {
  await p.stop();
});

const chatBody = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 30, temperature: 0 };

it("charges tokens per minute, answers 429 with Retry-After once a tenant's budget is spent, and frees it a minute later", async () => {
  const { tenantId, key } = await createTenantWithKey(p, "tokens");
  await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { limits: { tokensPerMinute: 40 } } });
  const chat = () => p.call("POST", "/v1/chat/completions", { key, json: chatBody });
  const first = await chat();
  expect(first.status).toBe(200);
  const used = (await first.json()).usage.total_tokens;
  expect(used).toBeGreaterThan(30);

  clock.at += 20_000;
  const second = await chat();
  expect(second.status).toBe(429);
  expect((await second.json()).error).toMatchObject({ type: "rate_limit_error", code: "tokens_rate_limit_exceeded" });
  expect(second.headers.get("retry-after")).toBe("40"); // the first completion's tokens leave the window 60 s after it

  clock.at += 39_999;
  expect((await chat()).status).toBe(429);
  clock.at += 1;
  expect((await chat()).status).toBe(200);
});

it("counts requests per minute on the same clock", async () => {
  const { tenantId, key } = await createTenantWithKey(p, "requests");
  await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { limits: { requestsPerMinute: 1 } } });
  const chat = () => p.call("POST", "/v1/chat/completions", { key, json: { ...chatBody, max_tokens: 2 } });
  expect((await chat()).status).toBe(200);
  clock.at += 59_999;
  const limited = await chat();
  expect(limited.status).toBe(429);
  expect((await limited.json()).error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
  expect(limited.headers.get("retry-after")).toBe("1");
  clock.at += 1;
  expect((await chat()).status).toBe(200);
});
