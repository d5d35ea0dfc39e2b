/**
 * LoRA dropout in the trainer (trainer/dropout.ts): the masks' statistics (0 with probability p, else
 * 1/(1-p): mean ≈ 1), their determinism per (seed, step, micro-batch), evaluation untouched by dropout,
 * and trainLora on stories260k: same seed -> same adapter bytes, lora_dropout recorded in
 * adapter_config.json, and a different adapter than without dropout.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrainingData, type TrainingExample } from "../../services/files/training-data.ts";
import { loadChatTemplate } from "../../services/model/chat-template.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../services/model/config.ts";
import { LORA_TARGETS } from "../../services/model/lora-layout.ts";
import { openWeights } from "../../services/model/safetensors.ts";
import { loadTokenizer } from "../../services/model/tokenizer.ts";
import { encodeExample, makeBatch, type Batch } from "../../trainer/dataset.ts";
import { dropoutMasks, maskSeed } from "../../trainer/dropout.ts";
import { initLoraParams, trainingFeeds, type LoraParams } from "../../trainer/lora-params.ts";
import { openStepRunner, type StepRunner } from "../../trainer/step-graph.ts";
import { trainLora, type TrainRequest } from "../../trainer/train.ts";
import { findModel } from "../helpers/model-path.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");

describe("dropout masks", () => {
  const shape = { numLayers: 2, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 };
  const params = initLoraParams(shape, { targets: ["q_proj", "down_proj"], rank: 4, alpha: 8 }, 1);

  it("drop with probability p and scale the kept elements by 1/(1-p): mean ≈ 1", () => {
    const p = 0.25;
    const masks = dropoutMasks(params, { batch: 4, seq: 64 }, p, 7);
    expect(Object.keys(masks)).toEqual(["lora.0.q_proj.dropout", "lora.0.down_proj.dropout", "lora.1.q_proj.dropout", "lora.1.down_proj.dropout"]);
    expect(masks["lora.0.down_proj.dropout"]!.dims).toEqual([4, 64, 172]);
    for (const { data } of Object.values(masks)) {
      const zeros = data.filter((v) => v === 0).length / data.length;
      const mean = data.reduce((s, v) => s + v, 0) / data.length;
      expect(data.every((v) => v === 0 || v === Math.fround(1 / (1 - p)))).toBe(true);
      expect(Math.abs(zeros - p)).toBeLessThan(0.02);
      expect(Math.abs(mean - 1)).toBeLessThan(0.03);
    }
    expect(masks["lora.0.q_proj.dropout"]!.data).not.toEqual(masks["lora.1.q_proj.dropout"]!.data); // one mask per module
  });

  it("are a function of (seed, step, micro-batch)", () => {
    const draw = (seed: number, step: number, micro: number) => dropoutMasks(params, { batch: 1, seq: 8 }, 0.5, maskSeed(seed, step, micro))["lora.0.q_proj.dropout"]!.data;
    expect(draw(3, 5, 1)).toEqual(draw(3, 5, 1));
    expect(draw(3, 5, 1)).not.toEqual(draw(3, 6, 1));
    expect(draw(3, 5, 1)).not.toEqual(draw(3, 5, 0));
    expect(draw(3, 5, 1)).not.toEqual(draw(4, 5, 1));
    expect(() => dropoutMasks(params, { batch: 1, seq: 1 }, 1, 0)).toThrow(/dropout/);
  });
});

describe("LoRA dropout on stories260k", () => {
  let modelDir: string;
  let cacheDir: string;
  let examples: TrainingExample[];
  let config: DecoderConfig;
  let batch: Batch;
  let params: LoraParams;
  let plain: StepRunner;
  let dropped: StepRunner;
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    cacheDir = await mkdtemp(join(tmpdir(), "sy-train-dropout-"));
    examples = parseTrainingData(readFileSync(FIXTURE, "utf8")).examples;
    config = await loadDecoderConfig(modelDir);
    const [tokenizer, template] = await Promise.all([loadTokenizer(modelDir), loadChatTemplate(modelDir)]);
    const encoder = { tokenizer, template, eosTokenId: config.eosTokenIds[0]! };
    batch = makeBatch(examples.slice(0, 4).map((e) => encodeExample(e, encoder, 256)!), 0);
    params = initLoraParams(config, { targets: [...LORA_TARGETS], rank: 4, alpha: 8 }, 2);
    for (const m of params.modules) m.b.forEach((_, i) => (m.b[i] = Math.sin(i + m.layer) * 0.05)); // a nonzero delta
    const store = await openWeights(modelDir);
    plain = await openStepRunner({ config, weights: store, targets: LORA_TARGETS, cacheDir, threads: 1 });
    dropped = await openStepRunner({ config, weights: store, targets: LORA_TARGETS, cacheDir, threads: 1, dropout: true });
    store.close();
  });
  afterAll(async () => {
    await plain?.close();
    await dropped?.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  const request = (dropout: number, seed = 1): TrainRequest => ({
    modelDir,
    training: examples,
    validation: examples,
    seed,
    cacheDir,
    threads: 1,
    hyperparameters: { learningRate: 1e-2, maxSteps: 4, epochs: 10, batchSize: 4, rank: 4, alpha: 8, evalEvery: 2, dropout },
  });

  it("compiles a separate step graph; evaluation is the same with or without dropout; masks of ones change nothing", async () => {
    expect(dropped.key).not.toBe(plain.key);
    const feeds = trainingFeeds(params, config);
    expect(await dropped.evaluate(batch, feeds)).toEqual(await plain.evaluate(batch, feeds));
    const ones = Object.fromEntries(Object.entries(dropoutMasks(params, batch, 0.5, 1)).map(([k, v]) => [k, { dims: v.dims, data: v.data.fill(1) }]));
    const withOnes = await dropped.runStep(batch, { ...feeds, ...ones });
    const without = await plain.runStep(batch, feeds);
    expect(withOnes.loss).toBeCloseTo(without.loss, 6);
    const masked = await dropped.runStep(batch, { ...feeds, ...dropoutMasks(params, batch, 0.5, 1) });
    expect(Math.abs(masked.loss - without.loss)).toBeGreaterThan(1e-4);
  });

  it("same seed -> same adapter; lora_dropout is recorded; dropout changes the adapter", async () => {
    const a = await trainLora(request(0.1));
    const b = await trainLora(request(0.1));
    const none = await trainLora(request(0));
    expect(Buffer.from(a.adapter.model).equals(Buffer.from(b.adapter.model))).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(a.adapter.config)).lora_dropout).toBe(0.1);
    expect(JSON.parse(new TextDecoder().decode(none.adapter.config)).lora_dropout).toBe(0);
    expect(Buffer.from(a.adapter.model).equals(Buffer.from(none.adapter.model))).toBe(false);
    expect(a.baseValidLoss).toBe(none.baseValidLoss); // step 0 evaluates without dropout
    await expect(trainLora(request(1))).rejects.toThrow(/dropout/);
  });
});
