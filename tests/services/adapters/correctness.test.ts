/**
 * Real PEFT adapters, uploaded as archives through the registry and loaded through the cache, run
 * in the compiled decoder's LoRA branch; checked against the plain-TypeScript reference forward on
 * merged weights W + s·B·A computed straight from the PEFT tensors, and, for adapters and logits
 * written outside TypeScript (tests/fixtures/peft-tiny/make.py, numpy), against those logits.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { createAdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import type { LoraWeights } from "../../../services/model/lora-layout.ts";
import { requireLora } from "../../../services/model/prompt-tuning.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { buildLoraTensors, NO_ADAPTER } from "../../../services/inference/lora-feeds.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../../services/model/config.ts";
import { buildDecoderGraph } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { openWeights } from "../../../services/model/safetensors.ts";
import { openDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";
import { findSharedModel, mergedLookup, RECIPES, TINY_LLAMA, zipOf, type BaseWeights } from "../../helpers/adapters.ts";
import { argmax, expectClose, expectDifferent, row as rowOf } from "../../helpers/compare.ts";
import { randomWeights } from "../../helpers/tiny-model.ts";

const TOLERANCE = 1e-4;
const DECODE_STEPS = 6;
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

const tempDir = async (prefix: string) => {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};


/** Greedy decoding of several rows in one batch; returns each row's generated tokens and logits. */
async function greedyBatch(runner: DecoderRunner, prompts: number[][], slots: number[], tensors: Record<string, ort.Tensor>) {
  const vocab = runner.config.vocabSize;
  const cache = BatchCache.empty(runner.config, prompts.length); // each step appends to it
  let tokens = prompts;
  let positions = prompts.map(() => 0);
  const generated: number[][] = prompts.map(() => []);
  const logits: Float32Array[][] = prompts.map(() => []);
  for (let step = 0; step < DECODE_STEPS; step++) {
    const out = await runner.step({ cache, tokens, startPositions: positions, lora: { slots, tensors } });
    positions = positions.map((p, r) => p + tokens[r]!.length);
    tokens = prompts.map((_, r) => {
      const row = rowOf(out.logits, r, vocab, prompts.length).slice();
      logits[r]!.push(row);
      generated[r]!.push(argmax(row));
      return [argmax(row)];
    });
  }
  return { generated, logits };
}

async function checkAdapters(config: DecoderConfig, base: BaseWeights, baseId: string) {
  const dataDir = await tempDir("sy-adapters-correct-");
  const store = openDatabase(join(dataDir, "db.sqlite"));
  store.db.insert(tenants).values({ id: "t_1", name: "one" }).run();
  const service = await createAdapterService({
    db: store.db,
    dataDir,
    base: { id: baseId, shape: config },
    limits: { maxRank: 16 },
    cacheBudgetBytes: 64 << 20,
  });

  const uploads = RECIPES.map((recipe) => randomPeftAdapter(config, { amplitude: 0.3, ...recipe.options }));
  const weights: LoraWeights[] = [];
  for (const [k, upload] of uploads.entries()) {
    const archive = zipOf({ "adapter/adapter_config.json": upload.files.config, "adapter/adapter_model.safetensors": upload.files.model });
    const row = await service.catalog.upload({ tenantId: "t_1", name: `recipe-${k}`, source: { archive } });
    weights.push(requireLora(await service.cache.get(row.id)));
  }

  const runner = new DecoderRunner(
    await ort.InferenceSession.create((await writeOnnx(buildDecoderGraph(config, base, { lora: true }), await tempDir("sy-lora-graph-"))).modelPath),
    config,
  );
  const references = [
    new ReferenceDecoder(config, (n) => base.getF32(n)),
    ...RECIPES.map((recipe, k) => new ReferenceDecoder(config, mergedLookup(base, uploads[k]!.files.model, recipe))),
  ];

  // Rows: the adapters in slots 0..3 and one row without an adapter, each with its own prompt.
  const slots = [0, NO_ADAPTER, 1, 2, 3];
  const prompts = [[1, 5, 9], [1, 7, 3, 4], [1, 12], [1, 30, 31, 32, 33], [1, 8, 7]];
  const batch = await greedyBatch(runner, prompts, slots, buildLoraTensors(config, weights));

  for (const [r, slot] of slots.entries()) {
    const reference = references[slot + 1]!;
    const refCache = reference.newCache();
    let input = prompts[r]!;
    for (let step = 0; step < DECODE_STEPS; step++) {
      const want = reference.forward(refCache, input).at(-1)!;
      expectClose(batch.logits[r]![step]!, want, TOLERANCE, `row ${r} step ${step}`);
      expect(batch.generated[r]![step]).toBe(argmax(want));
      input = [argmax(want)];
    }
    // Each sequence alone gets the same tokens as in the mixed batch.
    const alone = await greedyBatch(runner, [prompts[r]!], [slot === NO_ADAPTER ? NO_ADAPTER : 0], buildLoraTensors(config, [weights[Math.max(slot, 0)]!]));
    expect(alone.generated[0]).toEqual(batch.generated[r]);
  }

  // The adapters really change the model, so the comparisons above are not vacuous.
  const plain = references[0]!.forward(references[0]!.newCache(), prompts[0]!).at(-1)!;
  for (const adapted of references.slice(1)) expectDifferent(plain, adapted.forward(adapted.newCache(), prompts[0]!).at(-1)!, 1e-2);
  expect(new Set(batch.generated.map((g) => g.join(","))).size).toBeGreaterThan(1);
  store.close();
}

describe("PEFT adapters in the compiled decoder match merged-weight references", () => {
  it("on stories260k", async () => {
    const dir = findSharedModel("stories260k");
    const config = await loadDecoderConfig(dir);
    const weights = await openWeights(dir);
    await checkAdapters(config, weights, "stories260k");
    weights.close();
  });

  it("on a random tiny llama", async () => {
    const tensors = randomWeights(TINY_LLAMA, 5).tensors;
    const base: BaseWeights = { has: (n) => tensors.has(n), getF32: (n) => tensors.get(n)!.slice() };
    await checkAdapters(TINY_LLAMA, base, "tiny");
  });
});

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures");
const INDEPENDENT = ["rslora-patterns", "regex-bf16", "layer1-mlp-f16"];
const PREFILL = 5;

describe("PEFT adapters written by numpy (tests/fixtures/peft-tiny) on a numpy-written base", () => {
  it("give numpy's merged-weight logits at every position, in one batch with a row without adapter", async () => {
    const baseDir = join(FIXTURES, "hf-tiny/llama-head-dim");
    const config = await loadDecoderConfig(baseDir);
    const base = await openWeights(baseDir);
    const dataDir = await tempDir("sy-adapters-numpy-");
    const store = openDatabase(join(dataDir, "db.sqlite"));
    store.db.insert(tenants).values({ id: "t_1", name: "one" }).run();
    const service = await createAdapterService({ db: store.db, dataDir, base: { id: "llama-head-dim", shape: config }, limits: { maxRank: 16 }, cacheBudgetBytes: 64 << 20 });
    const weights: LoraWeights[] = [];
    const expected: number[][][] = [];
    for (const name of INDEPENDENT) {
      const read = (file: string) => new Uint8Array(readFileSync(join(FIXTURES, "peft-tiny", name, file)));
      const archive = zipOf({ "adapter_config.json": read("adapter_config.json"), "adapter_model.safetensors": read("adapter_model.safetensors") });
      const row = await service.catalog.upload({ tenantId: "t_1", name, source: { archive } });
      weights.push(requireLora(await service.cache.get(row.id)));
      expected.push((JSON.parse(new TextDecoder().decode(read("expected.json"))) as { logits: number[][] }).logits);
    }
    const plain = JSON.parse(readFileSync(join(baseDir, "expected.json"), "utf8")) as { tokens: number[]; logits: number[][] };
    expected.push(plain.logits);

    const runner = new DecoderRunner(
      await ort.InferenceSession.create((await writeOnnx(buildDecoderGraph(config, base, { lora: true }), await tempDir("sy-lora-graph-"))).modelPath),
      config,
    );
    const slots = [0, 1, 2, NO_ADAPTER];
    const lora = { slots, tensors: buildLoraTensors(config, weights) };
    const cache = BatchCache.empty(config, slots.length);
    const V = config.vocabSize;
    const tokens = plain.tokens;
    const prefill = await runner.step({ cache, tokens: slots.map(() => tokens.slice(0, PREFILL)), startPositions: slots.map(() => 0), allLogits: true, lora });
    slots.forEach((_, r) => {
      for (let t = 0; t < PREFILL; t++) expectClose(rowOf(prefill.logits, r * PREFILL + t, V, slots.length * PREFILL), expected[r]![t]!, TOLERANCE, `${INDEPENDENT[r] ?? "no adapter"} position ${t}`);
    });
    for (let t = PREFILL; t < tokens.length; t++) {
      const out = await runner.step({ cache, tokens: slots.map(() => [tokens[t]!]), startPositions: slots.map(() => t), lora });
      slots.forEach((_, r) => expectClose(rowOf(out.logits, r, V, slots.length), expected[r]![t]!, TOLERANCE, `${INDEPENDENT[r] ?? "no adapter"} position ${t}`));
    }
    // Each adapter changes the model, so matching its logits is not vacuous.
    for (const logits of expected.slice(0, -1)) expectDifferent(logits.at(-1)!, plain.logits.at(-1)!, 1e-2);
    store.close();
    base.close();
  });
});
