import { afterAll, beforeAll, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_MAX_QUEUE: "1", SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  ({ key } = await createTenantWithKey(p, "flood"));
});
afterAll(async () => {
  await p.stop();
});

it("answers a full inference queue with 429 and Retry-After, streaming or not, and never hangs", async () => {
  const chat = (stream: boolean, i: number) =>
    p.call("POST", "/v1/chat/completions", {
      key,
      json: { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 64, seed: i, stream },
    });
  const responses = await Promise.all(Array.from({ length: 80 }, (_, i) => chat(i % 2 === 0, i)));
  const statuses = responses.map((r) => r.status);
  expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
  const rejected = responses.filter((r) => r.status === 429);
  expect(rejected.length).toBeGreaterThan(0);
  expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
  for (const r of rejected) {
    expect(r.headers.get("retry-after")).toBe("1");
    expect((await r.json()).error).toMatchObject({ type: "rate_limit_error", code: "engine_overloaded" });
  }
  for (const r of responses.filter((x) => x.status === 200)) await r.text(); // every accepted one completes
});
