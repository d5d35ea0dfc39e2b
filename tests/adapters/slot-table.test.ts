import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../services/adapters/peft.ts";
import { LoraSlotTable } from "../../services/adapters/slot-table.ts";
import { randomPeftAdapter, type RandomAdapterOptions } from "../../services/adapters/synthetic.ts";
import type { LoraWeights } from "../../services/adapters/types.ts";
import { DecoderRunner } from "../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../services/inference/kv-cache.ts";
import { buildLoraTensors, NO_ADAPTER } from "../../services/inference/lora-feeds.ts";
import { buildDecoderGraph } from "../../services/model/decoder.ts";
import { writeOnnx } from "../../services/model/graph/onnx.ts";
import { TINY_LLAMA } from "./helpers.ts";
import { randomWeights } from "../engine/tiny-model.ts";

const config = TINY_LLAMA;
const adapter = (id: string, options: RandomAdapterOptions) =>
  loadPeftAdapter(id, randomPeftAdapter(config, { amplitude: 0.4, ...options }).files, config, { maxRank: 16 });

const big = adapter("big", { rank: 16, seed: 1 });
const attn = adapter("attn", { rank: 4, targets: ["q_proj", "o_proj"], seed: 2 });
const small = adapter("small", { rank: 2, targets: ["up_proj"], seed: 3 });

let dir: string;
let runner: DecoderRunner;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sy-slots-"));
  const tensors = randomWeights(config, 9).tensors;
  const graph = buildDecoderGraph(config, { has: (n) => tensors.has(n), getF32: (n) => tensors.get(n)!.slice() }, { lora: true });
  runner = new DecoderRunner(await ort.InferenceSession.create((await writeOnnx(graph, dir)).modelPath), config);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const prompts = [[1, 4, 9, 16], [1, 2], [1, 30, 7], [1, 5, 5, 5, 5]];

async function logits(slots: number[], tensors: Record<string, ort.Tensor>): Promise<Float32Array> {
  const rows = prompts.slice(0, slots.length);
  const out = await runner.step({ cache: BatchCache.empty(config, rows.length), tokens: rows, startPositions: rows.map(() => 0), lora: { slots, tensors } });
  return out.logits;
}

/** The batch's logits with the batch's adapters stacked afresh. */
async function rebuilt(rows: Array<LoraWeights | undefined>): Promise<Float32Array> {
  const distinct = [...new Map(rows.flatMap((a) => (a ? [[a.id, a] as const] : []))).values()];
  const stacked = distinct.length ? distinct : [big]; // a batch without adapters still feeds one slot
  return logits(rows.map((a) => (a ? distinct.indexOf(a) : NO_ADAPTER)), buildLoraTensors(config, stacked));
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe("LoRA slot table", () => {
  it("feeds the graph exactly as freshly built stacked tensors do", async () => {
    const table = new LoraSlotTable(config, 4, 16);
    const rows = [big, undefined, attn, small];
    const got = await logits(table.slotsFor(rows), table.tensors);
    expect(maxDiff(got, await rebuilt(rows))).toBeLessThan(1e-5);
    expect(maxDiff(got, await rebuilt([undefined, undefined, undefined, undefined]))).toBeGreaterThan(1e-2);
  });

  it("keeps resident adapters in place and overwrites every trace of an evicted one", async () => {
    const table = new LoraSlotTable(config, 2, 16);
    const first = table.slotsFor([big, attn]);
    expect(new Set(first)).toEqual(new Set([0, 1]));
    const tensorsBefore = table.tensors;
    const second = table.slotsFor([small, big, undefined]);
    expect(second[1]).toBe(first[0]); // big stayed where it was
    expect(second[0]).toBe(first[1]); // small took attn's slot
    expect(second[2]).toBe(NO_ADAPTER);
    expect(table.tensors).toBe(tensorsBefore);
    expect(maxDiff(await logits(second, table.tensors), await rebuilt([small, big, undefined]))).toBeLessThan(1e-5);
    // The least recently used slot goes first: big was used last, so attn replaces small.
    const third = table.slotsFor([attn, big]);
    expect(third).toEqual([second[0], second[1]]);
    expect(maxDiff(await logits(third, table.tensors), await rebuilt([attn, big]))).toBeLessThan(1e-5);
  });

  it("refuses a batch with more distinct adapters than slots, or a rank above the slots' rank", () => {
    expect(() => new LoraSlotTable(config, 2, 16).slotsFor([big, attn, small])).toThrow(/3 distinct adapters, more than the 2 LoRA slots/);
    expect(() => new LoraSlotTable(config, 2, 8).slotsFor([big])).toThrow(/rank 16, above the slots' rank 8/);
  });

  it("pads to the largest rank loaded so far and feeds only the slots up to the highest one used", async () => {
    const table = new LoraSlotTable(config, 4, 16);
    table.slotsFor([small]);
    expect(table.rank).toBe(2);
    expect(table.tensors["lora.0.up_proj.a"]!.dims).toEqual([1, config.hiddenSize, 2]);
    const rows = [attn, small, undefined, big];
    const slots = table.slotsFor(rows); // big regrows the buffers to rank 16, keeping small in its slot
    expect(slots[1]).toBe(0);
    expect(table.rank).toBe(16);
    expect(table.tensors["lora.0.up_proj.a"]!.dims).toEqual([3, config.hiddenSize, 16]);
    expect(maxDiff(await logits(slots, table.tensors), await rebuilt(rows))).toBeLessThan(1e-5);
    expect(table.slotsFor([small, undefined])).toEqual([0, NO_ADAPTER]); // a later small batch feeds only its own prefix
    expect(table.tensors["lora.0.up_proj.a"]!.dims).toEqual([1, config.hiddenSize, 16]);
    expect(maxDiff(await logits([0, NO_ADAPTER], table.tensors), await rebuilt([small, undefined]))).toBeLessThan(1e-5);
    const holes = table.slotsFor([big, undefined]); // the slots below big's are fed too, as empty segments
    expect(holes[0]).toBe(2);
    expect(table.tensors["lora.0.up_proj.a"]!.dims).toEqual([3, config.hiddenSize, 16]);
    expect(maxDiff(await logits(holes, table.tensors), await rebuilt([big, undefined]))).toBeLessThan(1e-5);
  });

  it("an evicted id is copied afresh next time", () => {
    const table = new LoraSlotTable(config, 2, 16);
    const [slot] = table.slotsFor([attn]);
    const a = table.tensors["lora.0.q_proj.a"]!.data as Float32Array;
    const start = slot! * config.hiddenSize * table.rank;
    a[start] = 12345;
    expect(table.slotsFor([attn])).toEqual([slot]); // resident: not copied again
    expect(a[start]).toBe(12345);
    table.evict("attn");
    table.slotsFor([attn]);
    expect(a[start]).toBe(attn.modules.get("layers.0.q_proj")!.a[0]);
  });
});
