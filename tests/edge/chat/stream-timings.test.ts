import { afterAll, beforeAll, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "timings"));
});
afterAll(async () => {
  await p.stop();
});

const ROUNDING = 0.005; // the response rounds milliseconds to two decimals

/**
 * The reported timings bounded by what the client saw. Client and server share this process's clock,
 * and the client starts its clock before the server can start its own: the first token cannot be
 * reported later than the client received it, nor the total later than the client got the last chunk.
 * No bound depends on how fast anything runs.
 */
it("reports timings no later than the client saw the first token and the end", async () => {
  const sentAt = performance.now();
  const res = await fetch(`${p.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 200, temperature: 0, stream: true }),
  });
  const reader = res.body!.getReader();
  let text = "";
  let firstContentAt: number | undefined;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    text += new TextDecoder().decode(chunk.value);
    if (firstContentAt === undefined && /"content":"[^"]/.test(text)) firstContentAt = performance.now();
  }
  const endAt = performance.now();
  const final = text
    .split("\n")
    .filter((line) => line.startsWith("data: {"))
    .map((line) => JSON.parse(line.slice(6)))
    .find((event) => event.switchyard);
  const t = final.switchyard.timings;

  expect(firstContentAt).toBeDefined();
  expect(t.first_token_ms).toBeGreaterThan(0);
  expect(t.first_token_ms).toBeLessThanOrEqual(firstContentAt! - sentAt + ROUNDING);
  expect(t.total_ms).toBeLessThanOrEqual(endAt - sentAt + ROUNDING);
  // The engine's share lies inside the request's; queueing comes before the first token.
  expect(t.engine_ms).toBeLessThanOrEqual(t.total_ms + ROUNDING);
  expect(t.queued_ms).toBeLessThanOrEqual(t.first_token_ms + ROUNDING);
});
