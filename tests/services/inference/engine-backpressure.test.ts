import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { GenerateEvent } from "../../../ports/index.ts";
import { createEngine, type Engine, unpinnedAdapters } from "../../../services/inference/engine.ts";
import { EventStream } from "../../../services/inference/event-stream.ts";
import { LORA_TARGETS } from "../../../services/model/lora-layout.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { collect, params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";
import { randomAdapter } from "../../helpers/tiny-model.ts";

let engine: Engine;
let cacheDir: string;

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sy-backpressure-"));
  engine = await createEngine({ modelDir: findModel("stories260k"), cacheDir, maxBatch: 4 });
});
afterAll(async () => {
  await engine.close();
  await rm(cacheDir, { recursive: true, force: true });
});

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 10));
}

it("parks a sequence whose consumer stops reading, serves others meanwhile, and resumes it with the same tokens", async () => {
  const request = () => ({ promptTokens: engine.tokenize("Once upon a time"), params: params({ maxTokens: 120, logprobs: 0 }) });
  const slow = engine.generate(request())[Symbol.asyncIterator]();
  const first = await slow.next();
  expect(first.done).toBe(false);
  await until(() => engine.stats().paused === 1);
  expect(engine.stats()).toMatchObject({ running: 0, paused: 1 });
  const stepsWhilePaused = engine.stats().decodeSteps;
  expect(stepsWhilePaused).toBeLessThan(119);

  // Another request runs to the end while the first one waits for its reader.
  const other = await collect(engine.generate(request()));
  expect(other.done).toMatchObject({ finishReason: "length", completionTokens: 120 });
  expect(engine.stats().paused).toBe(1);

  const rest: GenerateEvent[] = [first.value as GenerateEvent];
  for (let next = await slow.next(); !next.done; next = await slow.next()) rest.push(next.value);
  const tokens = rest.flatMap((e) => (e.type === "text" && e.logprob ? [e.tokenId] : []));
  expect(tokens).toEqual(other.tokens);
  expect(rest.at(-1)).toMatchObject({ type: "done", finishReason: "length", completionTokens: 120 });
  expect(engine.stats()).toMatchObject({ running: 0, paused: 0 });
  expect(engine.stats().pauses).toBeGreaterThanOrEqual(1);
});

it("cancels a parked sequence when its consumer gives up", async () => {
  const slow = engine.generate({ promptTokens: engine.tokenize("Tom"), params: params({ maxTokens: 120 }) })[Symbol.asyncIterator]();
  await slow.next();
  await until(() => engine.stats().paused === 1);
  await slow.return?.();
  await until(() => engine.stats().paused === 0);
  expect(engine.stats()).toMatchObject({ running: 0, waiting: 0, paused: 0 });
});

it("an event stream is full from the high-water mark until its consumer is halfway through the backlog", async () => {
  let drains = 0;
  const stream = new EventStream<number>({ onAbandon: () => {}, highWaterMark: 4, onDrain: () => drains++ });
  for (let i = 0; i < 3; i++) stream.push(i);
  expect(stream.full).toBe(false);
  stream.push(3);
  expect(stream.full).toBe(true);
  const events = stream[Symbol.asyncIterator]();
  await events.next();
  expect(stream.full).toBe(true); // 3 left
  await events.next();
  expect([stream.full, drains]).toEqual([false, 1]); // 2 left: half the mark
  stream.push(4);
  stream.end();
  const rest: number[] = [];
  for (let next = await events.next(); !next.done; next = await events.next()) rest.push(next.value);
  expect(rest).toEqual([2, 3, 4]);
  expect(drains).toBe(1);
});

it("keeps a parked sequence's adapter counted: another adapter waits while a plain request runs", async () => {
  const dir = findModel("stories260k");
  const config = await loadDecoderConfig(dir);
  const adapters = new Map(["a", "b"].map((id, i) => [id, randomAdapter(config, id, 4, LORA_TARGETS, i + 1)]));
  const lora = await createEngine({ modelDir: dir, cacheDir, maxBatch: 4, maxAdaptersPerBatch: 1, adapters: unpinnedAdapters(async (id) => adapters.get(id)!) });
  try {
    const request = (adapter?: string) => ({ promptTokens: lora.tokenize("Once upon a time"), params: params({ maxTokens: 40, logprobs: 0 }), adapter });
    const alone = await collect(lora.generate(request("a")));
    const slow = lora.generate(request("a"))[Symbol.asyncIterator]();
    const first = await slow.next();
    await until(() => lora.stats().paused === 1);
    const other = collect(lora.generate(request("b")));
    const plain = await collect(lora.generate(request()));
    expect(plain.done).toMatchObject({ finishReason: "length" });
    expect(lora.stats()).toMatchObject({ waiting: 1, paused: 1 });

    const events: GenerateEvent[] = [first.value as GenerateEvent];
    for (let next = await slow.next(); !next.done; next = await slow.next()) events.push(next.value);
    expect(events.flatMap((e) => (e.type === "text" && e.logprob ? [e.tokenId] : []))).toEqual(alone.tokens);
    expect((await other).done).toMatchObject({ finishReason: "length", completionTokens: 40 });
  } finally {
    await lora.close();
  }
});
