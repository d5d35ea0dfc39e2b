import { afterAll, beforeAll, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "cancel"));
});
afterAll(async () => {
  await p.stop();
});

async function gauge(name: string): Promise<number> {
  const text = await (await p.call("GET", "/metrics")).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]);
}

it("a client that disconnects mid-stream cancels its generation", async () => {
  const abort = new AbortController();
  const res = await fetch(`${p.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 400, temperature: 1, seed: 1, stream: true }),
    signal: abort.signal,
  });
  const reader = res.body!.getReader();
  let received = "";
  while ((received.match(/"content":"[^"]+"/g) ?? []).length < 3) {
    const chunk = await reader.read();
    if (chunk.done) break;
    received += new TextDecoder().decode(chunk.value);
  }
  expect(received).not.toContain("finish_reason\":\"");
  expect(await gauge("switchyard_engine_running_sequences")).toBe(1);
  abort.abort();

  let running = 1;
  for (let i = 0; i < 100 && running > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    running = await gauge("switchyard_engine_running_sequences");
  }
  expect(running).toBe(0);
  const steps = await gauge("switchyard_engine_decode_steps");
  await new Promise((r) => setTimeout(r, 200));
  expect(await gauge("switchyard_engine_decode_steps")).toBe(steps); // nothing decodes for the gone client
  expect(steps).toBeLessThan(400);
});
