import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../../services/adapters/peft.ts";
import { LoraSlotTable } from "../../../services/inference/slot-table.ts";
import { randomPeftAdapter, type RandomAdapterOptions } from "../../../services/adapters/synthetic.ts";
import type { LoraWeights } from "../../../services/model/lora-layout.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { buildLoraTensors, NO_ADAPTER } from "../../../services/inference/lora-feeds.ts";
import { buildDecoderGraph } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { TINY_LLAMA } from "../../helpers/adapters.ts";
import { mergedWeights, randomWeights } from "../../helpers/tiny-model.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { expectClose, expectDifferent, row } from "../../helpers/compare.ts";

const config = TINY_LLAMA;
const adapter = (id: string, options: RandomAdapterOptions) =>
  loadPeftAdapter(id, randomPeftAdapter(config, { amplitude: 0.4, ...options }).files, config, { maxRank: 16 });

const big = adapter("big", { rank: 16, seed: 1 });
const attn = adapter("attn", { rank: 4, targets: ["q_proj", "o_proj"], seed: 2 });
const small = adapter("small", { rank: 2, targets: ["up_proj"], seed: 3 });

const base = randomWeights(config, 9);
let dir: string;
let runner: DecoderRunner;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sy-slots-"));
  const graph = buildDecoderGraph(config, base, { lora: true });
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

const references = new Map<LoraWeights | undefined, ReferenceDecoder>();
/** The plain reference forward on merged weights W + B·A (scale folded into B), independent of the graph's LoRA branch. */
function reference(adapter: LoraWeights | undefined): ReferenceDecoder {
  let ref = references.get(adapter);
  if (!ref) {
    const weights = adapter ? mergedWeights(config, base, adapter) : base;
    ref = new ReferenceDecoder(config, (n) => weights.getF32(n));
    references.set(adapter, ref);
  }
  return ref;
}

/** The batch's logits equal both the freshly stacked tensors' and each row's merged-weight reference. */
async function expectBatch(got: Float32Array, rows: Array<LoraWeights | undefined>): Promise<void> {
  expectClose(got, await rebuilt(rows), 1e-5, "slot table vs freshly stacked");
  rows.forEach((adapter, r) => {
    const want = reference(adapter).forward(reference(adapter).newCache(), prompts[r]!).at(-1)!;
    expectClose(row(got, r, config.vocabSize, rows.length), want, 1e-4, `row ${r} (${adapter?.id ?? "no adapter"}) vs merged weights`);
  });
}

describe("LoRA slot table", () => {
  it("feeds the graph exactly as freshly built stacked tensors do", async () => {
    const table = new LoraSlotTable(config, 4, 16);
    const rows = [big, undefined, attn, small];
    const got = await logits(table.slotsFor(rows), table.tensors);
    await expectBatch(got, rows);
    expectDifferent(got, await rebuilt([undefined, undefined, undefined, undefined]), 1e-2);
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
    await expectBatch(await logits(second, table.tensors), [small, big, undefined]);
    // The least recently used slot goes first: big was used last, so attn replaces small.
    const third = table.slotsFor([attn, big]);
    expect(third).toEqual([second[0], second[1]]);
    await expectBatch(await logits(third, table.tensors), [attn, big]);
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
    await expectBatch(await logits(slots, table.tensors), rows);
    expect(table.slotsFor([small, undefined])).toEqual([0, NO_ADAPTER]); // a later small batch feeds only its own prefix
    expect(table.tensors["lora.0.up_proj.a"]!.dims).toEqual([1, config.hiddenSize, 16]);
    await expectBatch(await logits([0, NO_ADAPTER], table.tensors), [small, undefined]);
    const holes = table.slotsFor([big, undefined]); // the slots below big's are fed too, as empty segments
    expect(holes[0]).toBe(2);
    expect(table.tensors["lora.0.up_proj.a"]!.dims).toEqual([3, config.hiddenSize, 16]);
    await expectBatch(await logits(holes, table.tensors), [big, undefined]);
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
