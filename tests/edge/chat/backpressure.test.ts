import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { findModel } from "../../helpers/model-path.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

// Loopback sockets buffer about 4 MB for a client that never reads, so the stalled stream must be able to
// produce far more than that: stories260k with a longer context window (its weights unchanged) and the
// top 20 logprobs in every chunk (about 1.4 kB each).
const MAX_TOKENS = 8000;
const STALL_TIMEOUT_MS = 1500;

let p: TestPlatform;
let key: string;
let modelRoot: string;

beforeAll(async () => {
  modelRoot = mkdtempSync(join(tmpdir(), "long-stories-"));
  const source = findModel("stories260k");
  const dir = join(modelRoot, "stories260k-long");
  mkdirSync(dir);
  for (const file of ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) symlinkSync(join(source, file), join(dir, file));
  const config = JSON.parse(readFileSync(join(source, "config.json"), "utf8"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, max_position_embeddings: MAX_TOKENS + 192 }));
  p = await startTestPlatform({ SWITCHYARD_MODEL: dir, SWITCHYARD_STREAM_STALL_TIMEOUT_MS: String(STALL_TIMEOUT_MS) });
  ({ key } = await createTenantWithKey(p, "backpressure"));
});
afterAll(async () => {
  await p.stop();
  rmSync(modelRoot, { recursive: true, force: true });
});

async function gauges(): Promise<Record<string, number>> {
  const text = await (await p.call("GET", "/metrics")).text();
  return Object.fromEntries([...text.matchAll(/^switchyard_engine_(\w+) (\S+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((r) => setTimeout(r, 50));
}

function chatBody(maxTokens: number): string {
  return JSON.stringify({
    messages: [{ role: "user", content: "Once upon a time" }],
    max_tokens: maxTokens,
    temperature: 1,
    seed: 1,
    logprobs: true,
    top_logprobs: 20,
    stream: true,
  });
}

/** Sends a streaming chat request on a raw socket and stops reading once the response has begun. */
function stalledClient(): Promise<{ socket: Socket; received: Buffer[] }> {
  const url = new URL(p.url);
  const socket = connect(Number(url.port), url.hostname);
  const body = chatBody(MAX_TOKENS);
  socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  const received: Buffer[] = [];
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.once("data", (first: Buffer) => {
      socket.pause();
      received.push(first);
      resolve({ socket, received });
    });
  });
}

/** Resumes reading and returns everything the server sent until it closed the connection. */
function drain(client: { socket: Socket; received: Buffer[] }): Promise<string> {
  return new Promise((resolve) => {
    client.socket.on("data", (d: Buffer) => client.received.push(d));
    client.socket.once("close", () => resolve(Buffer.concat(client.received).toString()));
    client.socket.resume();
  });
}

it("pauses a stream whose client stops reading, then cancels it after the stall timeout; readers are unaffected", async () => {
  const stalled = await stalledClient();
  expect(Buffer.concat(stalled.received).toString()).toMatch(/^HTTP\/1\.1 200/);

  // Meanwhile a client that reads gets its whole stream.
  const res = await p.call("POST", "/v1/chat/completions", { key, body: chatBody(200), headers: { "content-type": "application/json" } });
  const text = await res.text();
  const chunks = text.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
  expect(chunks.filter((c) => c.choices[0]?.delta.content !== undefined && c.choices[0].logprobs)).toHaveLength(200);
  expect(chunks.at(-1).choices[0].finish_reason).toBe("length");
  expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);

  // The stalled stream leaves the engine (cancelled after the stall timeout) without being generated to the end.
  await until(async () => {
    const g = await gauges();
    return g.running_sequences === 0 && g.paused_sequences === 0 && g.waiting_requests === 0;
  });
  const after = await gauges();
  expect(after.pauses).toBeGreaterThanOrEqual(1);
  expect(after.decode_steps).toBeLessThan(MAX_TOKENS - 1);
  const steps = after.decode_steps;

  // The server closed the connection without finishing the stream, and nothing decodes for it any more.
  const all = await drain(stalled);
  expect(all).not.toContain("[DONE]");
  expect(all).not.toContain('"finish_reason":"length"');
  expect((all.match(/"delta":\{"content"/g) ?? []).length).toBeLessThan(MAX_TOKENS);
  expect((await gauges()).decode_steps).toBe(steps);
}, 120_000);
