/**
 * The engine off the edge's event loop (SWITCHYARD_ENGINE_THREAD): while long streamed generations
 * run, /health answers before they finish, and a client that disconnects frees its sequence. Health
 * latency is logged for the worker and the main-thread engine (not asserted: the machine is shared).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { uploadRandomAdapter } from "../../edge/chat/fixtures.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

const STREAMS = 12;
const request = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 400, temperature: 1, seed: 1, stream: true };

let p: TestPlatform | undefined;
afterEach(async () => {
  await p?.stop();
  p = undefined;
});

async function gauge(platform: TestPlatform, name: string): Promise<number> {
  const text = await (await platform.call("GET", "/metrics")).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]);
}

interface Chat {
  /** Resolves with everything the stream sent once it ends (finished or aborted). */
  done: Promise<string>;
  finished: boolean;
  /** Resolves once the first content chunk arrived (the sequence is decoding). */
  started: Promise<void>;
  abort: AbortController;
}

function streamChat(platform: TestPlatform, key: string, extra: Record<string, unknown> = {}): Chat {
  const abort = new AbortController();
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const chat: Chat = { abort, finished: false, started, done: Promise.resolve("") };
  const body = JSON.stringify({ ...request, ...extra });
  chat.done = (async () => {
    let received = "";
    try {
      const res = await fetch(`${platform.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body,
        signal: abort.signal,
      });
      const reader = res.body!.getReader();
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        received += new TextDecoder().decode(chunk.value);
        if (received.includes('"content":"')) markStarted();
      }
      chat.finished = true;
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    }
    markStarted();
    return received;
  })();
  return chat;
}

describe.each(["worker", "main"] as const)("engine thread %s", (thread) => {
  it("answers /health while long generations run, and a disconnect frees the sequences", { timeout: 120_000 }, async () => {
    const platform = (p = await startTestPlatform({ SWITCHYARD_ENGINE_THREAD: thread }));
    const { key } = await createTenantWithKey(platform, "health");
    const chats = Array.from({ length: STREAMS }, () => streamChat(platform, key));
    await Promise.all(chats.map((c) => c.started));
    expect(await gauge(platform, "switchyard_engine_running_sequences")).toBeGreaterThan(0);

    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const res = await platform.call("GET", "/health");
      latencies.push(performance.now() - t0);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    }
    // Health answered while the generations were still running: none of them has finished.
    expect(chats.filter((c) => c.finished)).toHaveLength(0);
    latencies.sort((a, b) => a - b);
    console.log(`engine thread ${thread}: /health during ${STREAMS} streams: median ${latencies[5].toFixed(2)} ms, max ${latencies[9].toFixed(2)} ms`);

    for (const chat of chats) chat.abort.abort();
    const received = await Promise.all(chats.map((c) => c.done));
    expect(received.every((text) => !text.includes('"finish_reason":"'))).toBe(true);
    // The engine lets the cancelled sequences go: nothing runs or waits, and no further decode step runs.
    while ((await gauge(platform, "switchyard_engine_running_sequences")) + (await gauge(platform, "switchyard_engine_waiting_requests")) > 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const steps = await gauge(platform, "switchyard_engine_decode_steps");
    expect(steps).toBeLessThan(400);
    await new Promise((r) => setTimeout(r, 50));
    expect(await gauge(platform, "switchyard_engine_decode_steps")).toBe(steps);
  });
});

it("a deleted adapter's files stay while the worker's sequence holds it, and go after", { timeout: 120_000 }, async () => {
  const platform = (p = await startTestPlatform({ SWITCHYARD_ENGINE_THREAD: "worker" }));
  const { key } = await createTenantWithKey(platform, "retire");
  const id = await uploadRandomAdapter(platform, key, "held", 3);
  const files = join(platform.dataDir, "adapters", id);
  const chat = streamChat(platform, key, { model: "held" });
  await chat.started;
  expect((await platform.call("DELETE", `/v1/adapters/${id}`, { key })).status).toBe(200);
  expect(existsSync(files)).toBe(true); // the running sequence still holds its lease in the worker
  const text = await chat.done;
  expect(chat.finished).toBe(true);
  expect(text).toMatch(/"finish_reason":"(length|stop)"/);
  while (existsSync(files)) await new Promise((r) => setTimeout(r, 10));
  expect((await platform.call("POST", "/v1/chat/completions", { key, json: { model: "held", messages: request.messages, max_tokens: 4 } })).status).toBe(404);
});
