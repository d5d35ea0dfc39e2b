/**
 * Sequence packing (trainer/packing.ts, dataset.ts packRows/makePackedBatch, the training graph's
 * `segment_ids`): a packed batch has exactly the loss and LoRA gradients of the same examples unpacked
 * (one per left-padded row), on a tiny random GQA model and on stories260k, within float32 tolerance:
 * loss |Δ|/loss < 1e-5, every gradient tensor max|Δ| < 1e-4·max|g| (summation order is all that differs;
 * measured ≈ 1e-6). Also: rows, segments and restarted positions; the "auto" rule; the unpacked graph's
 * key is unchanged (no segment input); the packed graph's own q_proj/down_proj gradients vs central
 * finite differences of the float64 reference (directional, < 1e-3 relative); and trainLora with packing forced on vs off.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrainingData, type TrainingExample } from "../../services/files/training-data.ts";
import { loadChatTemplate } from "../../services/model/chat-template.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../services/model/config.ts";
import { appendGradients } from "../../services/model/graph/autodiff.ts";
import { appendCausalLmLoss } from "../../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../../services/model/llama/training-graph.ts";
import type { DecoderWeights } from "../../services/model/llama/weights.ts";
import { LORA_TARGETS } from "../../services/model/lora-layout.ts";
import { openWeights } from "../../services/model/safetensors.ts";
import { loadTokenizer } from "../../services/model/tokenizer.ts";
import { encodeExample, makeBatch, makePackedBatch, packRows, type EncodedExample } from "../../trainer/dataset.ts";
import { initLoraParams, parameters, trainingFeeds, type LoraParams } from "../../trainer/lora-params.ts";
import { choosePacking, stepBatches, stepCells } from "../../trainer/packing.ts";
import { openStepRunner, STEP_COMPILER_VERSION, stepGraphKey, type StepRunner } from "../../trainer/step-graph.ts";
import { createTrainState, resolveHyperparameters, trainLora, trainStep } from "../../trainer/train.ts";
import { refTensor, type RefTensor } from "../helpers/evaluate.ts";
import { directionalDifference, referenceLoss, runOrt } from "../helpers/gradients.ts";
import { findModel } from "../helpers/model-path.ts";
import { seededRandom } from "../helpers/prng.ts";
import { randomArray, randomWeights, tinyConfig } from "../helpers/tiny-model.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");

function example(ids: number[], promptLength: number): EncodedExample {
  return { ids, weights: ids.map((_, t) => (t >= promptLength ? 1 : 0)), truncated: false };
}

const row = (a: BigInt64Array, b: number, seq: number) => Array.from(a.slice(b * seq, (b + 1) * seq), Number);

describe("packed rows", () => {
  it("fill rows first-fit, longest first; segments from 1, positions restart, labels stay within each example", () => {
    const a = example([1, 10, 11, 12, 13, 14], 2); // 5 inputs
    const b = example([1, 20, 21], 1); // 2 inputs
    const c = example([1, 30, 31, 32], 3); // 3 inputs
    const rows = packRows([b, a, c], 5);
    expect(rows).toEqual([[a], [c, b]]);
    const batch = makePackedBatch(rows, 0);
    expect([batch.batch, batch.seq]).toEqual([2, 5]);
    expect(row(batch.inputIds, 1, 5)).toEqual([1, 30, 31, 1, 20]);
    expect(row(batch.segmentIds!, 1, 5)).toEqual([1, 1, 1, 2, 2]);
    expect(row(batch.positionIds, 1, 5)).toEqual([0, 1, 2, 0, 1]);
    expect(row(batch.labels, 1, 5)).toEqual([30, 31, 32, 20, 21]);
    expect(Array.from(batch.lossWeights.slice(5))).toEqual([0, 0, 1, 1, 1]);
    expect(row(batch.attentionMask, 1, 5)).toEqual([1, 1, 1, 1, 1]);
    expect(row(batch.segmentIds!, 0, 5)).toEqual([1, 1, 1, 1, 1]);
    const unpacked = makeBatch([b, a, c], 0);
    expect([batch.tokens, batch.items]).toEqual([unpacked.tokens, unpacked.items]);
    // A row with room left is right-padded: segment 0, mask 0, weight 0.
    const padded = makePackedBatch([[a], [b]], 7);
    expect(row(padded.inputIds, 1, 5)).toEqual([1, 20, 7, 7, 7]);
    expect(row(padded.segmentIds!, 1, 5)).toEqual([1, 1, 0, 0, 0]);
    expect(row(padded.attentionMask, 1, 5)).toEqual([1, 1, 0, 0, 0]);
  });

  it('"auto" packs when it cuts the cells by a quarter; true/false force it', () => {
    const long = example(Array.from({ length: 41 }, (_, i) => i + 1), 1);
    const short = (n: number) => example(Array.from({ length: n + 1 }, (_, i) => i + 1), 1);
    const mixed = [long, ...Array.from({ length: 7 }, (_, i) => short(3 + i))];
    expect(stepCells(mixed, 8)).toEqual({ unpacked: 8 * 40, packed: 3 * 40 }); // [40], [9 8 7 6 5 4], [3]
    expect(choosePacking("auto", mixed, 1, 8, 8)).toBe(true);
    const similar = Array.from({ length: 8 }, (_, i) => short(30 + (i % 3)));
    expect(stepCells(similar, 8).packed).toBe(stepCells(similar, 8).unpacked); // none fit together
    expect(choosePacking("auto", similar, 1, 8, 8)).toBe(false);
    expect(choosePacking(true, similar, 1, 8, 8)).toBe(true);
    expect(choosePacking(false, mixed, 1, 8, 8)).toBe(false);
  });
});

/** Loss and gradients of the same examples through the unpacked and the packed runner, compared. */
async function expectSameStep(unpacked: StepRunner, packed: StepRunner, params: LoraParams, config: DecoderConfig, examples: EncodedExample[]) {
  const feeds = trainingFeeds(params, config);
  const plainBatch = makeBatch(examples, 0);
  const packedBatch = makePackedBatch(packRows(examples, Math.max(...examples.map((e) => e.ids.length - 1))), 0);
  expect(packedBatch.batch).toBeLessThan(plainBatch.batch);
  expect(packedBatch.batch * packedBatch.seq).toBeLessThan(plainBatch.batch * plainBatch.seq);
  const want = await unpacked.runStep(plainBatch, feeds);
  const got = await packed.runStep(packedBatch, feeds);
  expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(1e-5);
  let worst = 0;
  expect([...got.grads.keys()]).toEqual([...want.grads.keys()]);
  for (const [name, w] of want.grads) {
    const g = got.grads.get(name)!;
    const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale, `${name}: nonzero gradient`).toBeGreaterThan(0);
    const diff = w.reduce((m, v, i) => Math.max(m, Math.abs(v - g[i]!)), 0) / scale;
    worst = Math.max(worst, diff);
    expect(diff, name).toBeLessThan(1e-4);
  }
  const [e1, e2] = [await unpacked.evaluate(plainBatch, feeds), await packed.evaluate(packedBatch, feeds)];
  expect(Math.abs(e2.loss - e1.loss) / e1.loss).toBeLessThan(1e-5);
  expect([e2.correct, e2.items]).toEqual([e1.correct, e1.items]);
  return { rows: [plainBatch.batch, packedBatch.batch], worst };
}

describe("a packed batch's loss and gradients equal the unpacked batch's (tiny random GQA model)", () => {
  const config = tinyConfig({ hiddenSize: 16, intermediateSize: 20, numHeads: 4, numKvHeads: 2, headDim: 4, vocabSize: 31 });
  let dir: string;
  const runners: StepRunner[] = [];
  afterAll(async () => {
    for (const r of runners) await r.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("for every LoRA tensor of every target, and through trainStep's accumulation", async () => {
    dir = await mkdtemp(join(tmpdir(), "sy-packing-"));
    const weights = Object.assign(randomWeights(config, 5), { identity: "tiny-5" });
    const open = (packed: boolean) => openStepRunner({ config, weights, targets: LORA_TARGETS, cacheDir: dir, threads: 1, packed });
    const [plain, packed] = [await open(false), await open(true)];
    runners.push(plain, packed);
    expect(plain.key).toBe(stepGraphKey(config, "tiny-5", LORA_TARGETS));
    expect(packed.key).not.toBe(plain.key);
    const random = seededRandom(4);
    const lengths: Array<[number, number]> = [[12, 4], [4, 2], [6, 3], [3, 1], [5, 2], [9, 5]];
    const examples = lengths.map(([n, prompt]) => example([1, ...Array.from({ length: n - 1 }, () => random.int(3, config.vocabSize - 1))], prompt));
    const params = initLoraParams(config, { targets: [...LORA_TARGETS], rank: 2, alpha: 3 }, 2);
    for (const m of params.modules) m.b.forEach((_, i) => (m.b[i] = (random.next() - 0.5) * 0.6)); // B ≠ 0: ∂L/∂A ≠ 0
    const { rows, worst } = await expectSameStep(plain, packed, params, config, examples);
    console.log(`tiny model: ${rows[0]} rows -> ${rows[1]} packed; worst gradient difference ${worst.toExponential(2)} of max |g|`);

    // One optimizer step over micro-batches of 2 rows: the same update either way.
    const h = resolveHyperparameters({ rank: 2, alpha: 3, learningRate: 0.05, warmupRatio: 0 });
    const states = [false, true].map(() => {
      const state = createTrainState(config, h, 3, 4);
      parameters(state.params).forEach((p, i) => p.set(parameters(params)[i]!));
      return state;
    });
    const a = await trainStep(plain, states[0]!, stepBatches(examples, 2, 0, false), h.maxGradNorm);
    const b = await trainStep(packed, states[1]!, stepBatches(examples, 2, 0, true), h.maxGradNorm);
    expect(Math.abs(a.loss - b.loss) / a.loss).toBeLessThan(1e-5);
    expect(Math.abs(a.gradNorm - b.gradNorm) / a.gradNorm).toBeLessThan(1e-4);
    expect(a.tokens).toBe(b.tokens);
    const [pa, pb] = states.map((s) => parameters(s.params));
    pa!.forEach((p, i) => p.forEach((v, k) => expect(Math.abs(v - pb![i]![k]!)).toBeLessThan(1e-3 * h.learningRate)));
  });

  it("gives, for the packed graph itself, LoRA gradients that match central finite differences of the float64 reference", async () => {
    const weights = randomWeights(config, 7);
    const g = buildTrainingGraph(config, weights, { packed: true });
    const { loss } = appendCausalLmLoss(g, g.outputs.find((v) => v.name === "logits")!);
    const lora = g.inputs.filter((v) => v.name.startsWith("lora.") && (v.name.includes(".q_proj.") || v.name.includes(".down_proj.")));
    const grads = appendGradients(g, loss, lora);
    const random = seededRandom(8);
    const ex = (n: number, prompt: number) => example([1, ...Array.from({ length: n - 1 }, () => random.int(3, config.vocabSize - 1))], prompt);
    const batch = makePackedBatch([[ex(5, 2), ex(4, 1)], [ex(6, 3)]], 0);
    const dims = [batch.batch, batch.seq];
    const feeds: Record<string, RefTensor> = {
      input_ids: refTensor(dims, Array.from(batch.inputIds, Number)),
      position_ids: refTensor(dims, Array.from(batch.positionIds, Number)),
      attention_mask: refTensor(dims, Array.from(batch.attentionMask, Number)),
      segment_ids: refTensor(dims, Array.from(batch.segmentIds!, Number)),
      labels: refTensor(dims, Array.from(batch.labels, Number)),
      loss_weights: refTensor(dims, Array.from(batch.lossWeights)),
    };
    g.inputs.forEach((v, k) => {
      if (!v.name.startsWith("lora.")) return;
      const shape = v.shape!.map((d) => (d === "lora_rank" ? 2 : (d as number)));
      feeds[v.name] = refTensor(shape, randomArray(shape[0]! * shape[1]!, 500 + k, 0.5));
    });
    const out = await runOrt(g, feeds, ["loss", ...grads.map((v) => v.name)]);
    expect(Math.abs(out.loss![0]! - referenceLoss(g, loss, feeds)) / referenceLoss(g, loss, feeds)).toBeLessThan(1e-5);
    lora.forEach((v, k) => {
      const analytic = out[grads[k]!.name]!;
      const direction = Float64Array.from(randomArray(analytic.length, 900 + k, 1));
      const fd = directionalDifference(g, loss, feeds, v.name, direction);
      const dot = analytic.reduce((sum, a, i) => sum + a * direction[i]!, 0);
      expect(Math.abs(dot - fd) / Math.abs(fd), v.name).toBeLessThan(1e-3);
    });
  });

  it("leaves the unpacked graph without a segment input (same graph, same key as before packing)", () => {
    const weights: DecoderWeights = randomWeights(config, 5);
    expect(buildTrainingGraph(config, weights).inputs.map((v) => v.name)).not.toContain("segment_ids");
    expect(buildTrainingGraph(config, weights, { packed: true }).inputs.map((v) => v.name)).toContain("segment_ids");
    expect(STEP_COMPILER_VERSION).toBe("train-step-2");
  });
});

describe("packing on stories260k", () => {
  let modelDir: string;
  let cacheDir: string;
  let chats: TrainingExample[];
  let config: DecoderConfig;
  let examples: EncodedExample[];
  const runners: StepRunner[] = [];
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    cacheDir = await mkdtemp(join(tmpdir(), "sy-packing-260k-"));
    chats = parseTrainingData(readFileSync(FIXTURE, "utf8")).examples;
    config = await loadDecoderConfig(modelDir);
    const [tokenizer, template] = await Promise.all([loadTokenizer(modelDir), loadChatTemplate(modelDir)]);
    const encoder = { tokenizer, template, eosTokenId: config.eosTokenIds[0]! };
    examples = chats.map((e) => encodeExample(e, encoder, 256)!);
  });
  afterAll(async () => {
    for (const r of runners) await r.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it("gives the unpacked batch's loss and every LoRA gradient", async () => {
    const store = await openWeights(modelDir);
    try {
      for (const packed of [false, true]) runners.push(await openStepRunner({ config, weights: store, targets: LORA_TARGETS, cacheDir, threads: 1, packed }));
    } finally {
      store.close();
    }
    const params = initLoraParams(config, { targets: [...LORA_TARGETS], rank: 4, alpha: 8 }, 2);
    for (const m of params.modules) m.b.forEach((_, i) => (m.b[i] = Math.sin(i + m.layer) * 0.05));
    // The QA chats with a longer one first, so shorter ones fit beside each other in its length.
    const first = examples.slice(0, 3);
    const long = { ids: first.flatMap((e) => e.ids), weights: first.flatMap((e) => e.weights), truncated: false };
    const { rows, worst } = await expectSameStep(runners[0]!, runners[1]!, params, config, [long, ...examples.slice(3, 9)]);
    console.log(`stories260k: ${rows[0]} rows -> ${rows[1]} packed; worst gradient difference ${worst.toExponential(2)} of max |g|`);
  }, 60_000);

  it("trainLora with packing forced on ends where it ends with packing off", async () => {
    const run = (packing: boolean) =>
      trainLora({ modelDir, training: chats, validation: chats, seed: 1, cacheDir, threads: 1, hyperparameters: { learningRate: 1e-2, maxSteps: 3, epochs: 10, batchSize: 6, rank: 4, alpha: 8, evalEvery: 3, packing } });
    const [off, on] = [await run(false), await run(true)];
    expect(on.steps).toBe(3);
    expect(on.trainedTokens).toBe(off.trainedTokens);
    expect(Math.abs(on.baseValidLoss - off.baseValidLoss) / off.baseValidLoss).toBeLessThan(1e-5);
    expect(Math.abs(on.bestValidLoss - off.bestValidLoss) / off.bestValidLoss).toBeLessThan(1e-4);
    expect(on.bestValidLoss).toBeLessThan(on.baseValidLoss);
  }, 120_000);
});
