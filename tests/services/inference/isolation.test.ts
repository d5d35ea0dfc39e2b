/**
 * State isolation between sequences: no sequence's numbers may change another's. A poisoned
 * sequence (non-finite keys and values, forced straight into its cache row, or an adapter whose
 * weights are NaN) must leave every other sequence, the ones beside it and the ones that later take
 * its cache row, equal to the plain reference.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LORA_TARGETS, type LoraWeights } from "../../../services/model/lora-layout.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { createEngine, type Engine, unpinnedAdapters } from "../../../services/inference/engine.ts";
import { NonFiniteLogitsError } from "../../../services/inference/errors.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../../services/model/config.ts";
import { buildDecoderGraph, type DecoderOptions } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { ReferenceDecoder, type ReferenceCache } from "../../../services/model/reference.ts";
import { argmax, expectClose, row } from "../../helpers/compare.ts";
import { collect, greedyReference, params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";
import { MemoryWeights, randomAdapter, randomWeights, TINY_VARIANTS } from "../../helpers/tiny-model.ts";

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe("a poisoned cache row never reaches another sequence", () => {
  const config = TINY_VARIANTS["llama untied GQA, odd sizes"];
  const weights = randomWeights(config, 33);
  const reference = new ReferenceDecoder(config, (n) => weights.getF32(n));
  let runner: DecoderRunner;

  beforeAll(async () => {
    const session = async (options: DecoderOptions) => {
      const dir = await mkdtemp(join(tmpdir(), "sy-isolation-"));
      dirs.push(dir);
      return ort.InferenceSession.create((await writeOnnx(buildDecoderGraph(config, weights, options), dir)).modelPath);
    };
    runner = new DecoderRunner(await session({ fused: true, kvOutput: "new" }), config, await session({ fused: true, decodeOnly: true }));
  });

  interface Row {
    ref?: ReferenceCache;
    next: number;
    position: number;
  }
  const prompt = (length: number, seed: number) => Array.from({ length }, (_, i) => 1 + ((i * 5 + seed * 11) % (config.vocabSize - 1)));
  const vocab = config.vocabSize;

  /** Prefills a sequence alone and joins it; `poisoned` rows get no reference and are not checked. */
  async function admit(batch: BatchCache, rows: Row[], tokens: number[], poisoned = false): Promise<void> {
    const own = BatchCache.empty(config, 1);
    const out = await runner.step({ cache: own, tokens: [tokens], startPositions: [0] });
    batch.join(own);
    if (poisoned) {
      rows.push({ next: 1, position: tokens.length });
      return;
    }
    const ref = reference.newCache();
    const want = reference.forward(ref, tokens).at(-1)!;
    expectClose(out.logits, want, 1e-4, "prefill logits");
    rows.push({ ref, next: argmax(want), position: tokens.length });
  }

  /** Decode steps; every unpoisoned row must match its reference at every step. */
  async function decode(batch: BatchCache, rows: Row[], steps: number): Promise<void> {
    for (let s = 0; s < steps; s++) {
      const out = await runner.step({ cache: batch, tokens: rows.map((r) => [r.next]), startPositions: rows.map((r) => r.position) });
      rows.forEach((r, i) => {
        r.position++;
        const logits = row(out.logits, i, vocab, rows.length);
        if (!r.ref) return;
        const [want] = reference.forward(r.ref, [r.next]);
        expectClose(logits, want, 1e-4, `row ${i}, step ${s}`);
        r.next = argmax(want);
      });
    }
  }

  /** Writes NaN keys and infinite values over every column in use of a row, its padding included. */
  function poison(batch: BatchCache, row: number): void {
    const { numKvHeads: heads, headDim } = config;
    for (let l = 0; l < config.numLayers; l++) {
      for (let h = 0; h < heads; h++) {
        const start = ((row * heads + h) * batch.capacity) * headDim;
        batch.keys(l).fill(Number.NaN, start, start + batch.width * headDim);
        batch.values(l).fill(Number.POSITIVE_INFINITY, start, start + batch.width * headDim);
      }
    }
  }

  it("keeps the neighbours of a poisoned row and the sequence that takes its row over equal to the reference", async () => {
    const batch = BatchCache.empty(config, 0, undefined, 4);
    const rows: Row[] = [];
    await admit(batch, rows, prompt(4, 1));
    await admit(batch, rows, prompt(6, 2));
    await admit(batch, rows, prompt(20, 3), true); // the widest: its columns reach left of a later, shorter newcomer's
    poison(batch, 2);
    await decode(batch, rows, 3);
    // The poisoned last row leaves, and a short newcomer takes the freed row.
    const order = batch.removeRows([2]);
    const kept = order.map((i) => rows[i]!);
    await admit(batch, kept, prompt(3, 4));
    await decode(batch, kept, 4);
  });

  it("keeps a sequence that joins an emptied batch equal to the reference", async () => {
    const batch = BatchCache.empty(config, 0, undefined, 2);
    const rows: Row[] = [];
    await admit(batch, rows, prompt(25, 5), true);
    poison(batch, 0);
    batch.removeRows([0]); // every row left: the next join starts at column 0 over the old buffers
    rows.length = 0;
    await admit(batch, rows, prompt(2, 6));
    await decode(batch, rows, 5);
  });
});

describe("an adapter with non-finite weights on stories260k", () => {
  let engine: Engine;
  let config: DecoderConfig;
  let base: MemoryWeights;
  let cacheDir: string;
  const adapters = new Map<string, LoraWeights>();

  beforeAll(async () => {
    const dir = findModel("stories260k");
    config = await loadDecoderConfig(dir);
    base = await MemoryWeights.load(dir);
    // Loaded straight into the engine, past the import checks that refuse such files.
    adapters.set("nan", withValue(randomAdapter(config, "nan", 4, LORA_TARGETS, 7), Number.NaN));
    adapters.set("inf", withValue(randomAdapter(config, "inf", 4, ["v_proj"], 8), Number.POSITIVE_INFINITY));
    cacheDir = await mkdtemp(join(tmpdir(), "sy-isolation-engine-"));
    dirs.push(cacheDir);
    engine = await createEngine({ modelDir: dir, cacheDir, maxBatch: 4, adapters: unpinnedAdapters(async (id) => adapters.get(id)!) });
  });
  afterAll(async () => engine?.close());

  const generate = (adapter: string | undefined, text: string) =>
    collect(engine.generate({ promptTokens: engine.tokenize(text), params: params({ maxTokens: 16, logprobs: 0 }), adapter }));
  const expected = (text: string) => greedyReference(config, (n) => base.getF32(n), engine.tokenize(text), 16);

  it("fails only its own requests, with the reason, while base requests beside and after it stay exact", async () => {
    const beside = ["Once upon a time", "The little dog", "Lily wanted"];
    const results = await Promise.allSettled([
      generate("nan", "Once upon a time"),
      ...beside.map((text) => generate(undefined, text)),
      generate("inf", "The sun was"),
    ]);
    for (const poisoned of [results[0], results.at(-1)!]) {
      expect(poisoned.status).toBe("rejected");
      expect((poisoned as PromiseRejectedResult).reason).toBeInstanceOf(NonFiniteLogitsError);
    }
    beside.forEach((text, i) => {
      const r = results[i + 1]!;
      expect(r.status).toBe("fulfilled");
      const got = (r as PromiseFulfilledResult<Awaited<ReturnType<typeof generate>>>).value;
      expect(got.tokens).toEqual(expected(text));
      expect(got.logprobs.every(Number.isFinite)).toBe(true);
    });
    const after = await generate(undefined, "One day");
    expect(after.tokens).toEqual(expected("One day"));
    expect(after.tokens.length).toBeGreaterThan(0);
  });
});

function withValue(adapter: LoraWeights, value: number): LoraWeights {
  for (const m of adapter.modules.values()) m.b.fill(value, 0, Math.max(1, m.b.length >> 3));
  return adapter;
}
