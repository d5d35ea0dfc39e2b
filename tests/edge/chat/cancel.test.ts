import { afterAll, beforeAll, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "cancel"));
});
afterAll(async () => {
  await p.stop();
});

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

/** Waits, by polling the gauges, until the scheduler holds no sequence at all. */
async function engineIdle(): Promise<void> {
  while ((await gauges("switchyard_engine_running_sequences", "switchyard_engine_paused_sequences", "switchyard_engine_waiting_requests")).some((n) => n > 0)) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

const request = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 400, temperature: 1, seed: 1 };

it("a client that disconnects mid-stream cancels its generation", async () => {
  // The same request run to its end: how many decode steps it takes when nobody cancels it.
  const before = await gauge("switchyard_engine_decode_steps");
  const whole = await (await p.call("POST", "/v1/chat/completions", { key, json: request })).json();
  expect(whole.usage.completion_tokens).toBe(400); // this seed writes no end of text: the run is long
  const fullRun = (await gauge("switchyard_engine_decode_steps")) - before;
  expect(fullRun).toBeGreaterThan(300);

  const abort = new AbortController();
  const start = await gauge("switchyard_engine_decode_steps");
  const res = await fetch(`${p.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ ...request, stream: true }),
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
  expect(await liveSequences()).toBe(1);
  abort.abort();

  // Once the scheduler holds nothing, no further step can run for the gone client.
  await engineIdle();
  const steps = (await gauge("switchyard_engine_decode_steps")) - start;
  expect(steps).toBeGreaterThan(0);
  expect(steps).toBeLessThan(fullRun);
});
