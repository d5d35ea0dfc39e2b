import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LORA_TARGETS, type LoraWeights } from "../../../services/model/lora-layout.ts";
import { LoraSlotTable } from "../../../services/inference/slot-table.ts";
import { createEngine, type Engine, unpinnedAdapters, type WeightMemory } from "../../../services/inference/engine.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../../services/model/config.ts";
import { collect, greedyReference, params, type Collected } from "../../helpers/generate.ts";
import { expectClose } from "../../helpers/compare.ts";
import { findModel } from "../../helpers/model-path.ts";
import { MemoryWeights, mergedWeights, randomAdapter } from "../../helpers/tiny-model.ts";

const STEPS = 24;

// Both weight-memory modes: "mapped" runs LoRA-free graphs for steps without adapters, "packed" one LoRA graph for all.
const SESSIONS: Record<WeightMemory, number> = { mapped: 4, packed: 1 };

describe.each(["mapped", "packed"] as const)("engine with LoRA adapters on stories260k (%s weights)", (weightMemory) => {
  let engine: Engine;
  let cacheDir: string;
  let config: DecoderConfig;
  let base: MemoryWeights;
  const adapters = new Map<string, LoraWeights>();
  const resolved: string[] = [];

  beforeAll(async () => {
    const dir = findModel("stories260k");
    config = await loadDecoderConfig(dir);
    base = await MemoryWeights.load(dir);
    adapters.set("all-r8", randomAdapter(config, "all-r8", 8, LORA_TARGETS, 1));
    adapters.set("attn-r4", randomAdapter(config, "attn-r4", 4, ["q_proj", "k_proj", "v_proj", "o_proj"], 2));
    adapters.set("mlp-r2", randomAdapter(config, "mlp-r2", 2, ["gate_proj", "up_proj", "down_proj"], 3));
    adapters.set("qv-r16", randomAdapter(config, "qv-r16", 16, ["q_proj", "v_proj"], 4));
    cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-lora-"));
    engine = await createEngine({
      modelDir: dir,
      cacheDir,
      maxBatch: 8,
      weightMemory,
      adapters: unpinnedAdapters(async (id) => {
        resolved.push(id);
        const adapter = adapters.get(id);
        if (!adapter) throw new Error(`unknown adapter ${id}`);
        return adapter;
      }),
    });
  });
  afterAll(async () => {
    await engine.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  const run = (adapter: string | undefined, prompt: number[]) =>
    collect(engine.generate({ promptTokens: prompt, params: params({ maxTokens: STEPS, logprobs: 0 }), adapter }));

  it("follows a reference forward on merged weights W + s·B·A, and differs from the base model", async () => {
    const prompt = engine.tokenize("Once upon a time");
    const adapted = await run("all-r8", prompt);
    const merged = mergedWeights(config, base, adapters.get("all-r8")!);
    expect(adapted.tokens).toEqual(greedyReference(config, (n) => merged.getF32(n), prompt, STEPS));
    const plain = await run(undefined, prompt);
    expect(plain.tokens).toEqual(greedyReference(config, (n) => base.getF32(n), prompt, STEPS));
    expect(adapted.tokens).not.toEqual(plain.tokens);
  });

  it("serves a batch mixing four adapters and no adapter exactly as each alone, with no new session", async () => {
    const sessions = engine.stats().sessionsCreated;
    const jobs: [string | undefined, number[]][] = [
      ["all-r8", engine.tokenize("Tom had a red")],
      [undefined, engine.tokenize("The cat")],
      ["attn-r4", engine.tokenize("One day, Lily")],
      ["mlp-r2", engine.tokenize("Once")],
      ["qv-r16", engine.tokenize("The sun was")],
    ];
    const alone: Collected[] = [];
    for (const [adapter, prompt] of jobs) alone.push(await run(adapter, prompt));
    const together = await Promise.all(jobs.map(([adapter, prompt]) => run(adapter, prompt)));
    together.forEach((got, i) => {
      expect(got.tokens).toEqual(alone[i].tokens);
      // The mapped weights are not prepacked: onnxruntime multiplies one row (GEMV) and several (GEMM, packing
      // on the fly) in different summation orders, so a row's logprobs alone and in a batch differ by float noise.
      expectClose(got.logprobs, alone[i].logprobs, 2e-4, `request ${i} logprobs`);
    });
    expect(engine.stats().peakBatch).toBeGreaterThanOrEqual(4);
    expect(engine.stats().sessionsCreated).toBe(sessions);
    expect(sessions).toBe(SESSIONS[weightMemory]); // mapped: prefill + decode graphs, with and without LoRA; packed: the LoRA prefill graph alone
    expect(new Set(resolved)).toEqual(new Set(adapters.keys()));
  });

  it("works with a persistent LoRA slot table that reuses slots across batches", async () => {
    const slotTable = new LoraSlotTable(config, 2, 16);
    const tableDir = await mkdtemp(join(tmpdir(), "sy-engine-slots-"));
    const withTable = await createEngine({
      modelDir: findModel("stories260k"),
      cacheDir: tableDir,
      maxAdaptersPerBatch: 2,
      weightMemory,
      loraSlots: slotTable,
      adapters: unpinnedAdapters(async (id) => adapters.get(id)!),
    });
    try {
      const prompt = engine.tokenize("One day");
      const expected = new Map<string, number[]>();
      for (const id of adapters.keys()) expected.set(id, (await run(id, prompt)).tokens);
      const jobs = [...adapters.keys(), ...adapters.keys()];
      const got = await Promise.all(
        jobs.map((id) => collect(withTable.generate({ promptTokens: prompt, params: params({ maxTokens: STEPS, logprobs: 0 }), adapter: id }))),
      );
      got.forEach((g, i) => expect(g.tokens).toEqual(expected.get(jobs[i])));
    } finally {
      await withTable.close();
      await rm(tableDir, { recursive: true, force: true });
    }
  });

  it("fails only the request whose adapter cannot be loaded", async () => {
    await expect(run("missing", [1])).rejects.toThrow("unknown adapter missing");
    const after = await run(undefined, [1]);
    expect(after.done?.completionTokens).toBe(STEPS);
  });

  it("refuses only the request whose adapter's rank is above maxLoraRank", async () => {
    const small = await createEngine({ modelDir: findModel("stories260k"), cacheDir, maxLoraRank: 8, weightMemory, adapters: unpinnedAdapters(async (id) => adapters.get(id)!) });
    try {
      const prompt = engine.tokenize("Once upon a time");
      const go = (adapter: string) => collect(small.generate({ promptTokens: prompt, params: params({ maxTokens: STEPS, logprobs: 0 }), adapter }));
      const [tooBig, fits] = await Promise.allSettled([go("qv-r16"), go("all-r8")]);
      expect(tooBig.status === "rejected" && String(tooBig.reason)).toMatch(/rank 16, above this node's maximum LoRA rank 8/);
      expect(fits.status === "fulfilled" && fits.value.tokens).toEqual((await run("all-r8", prompt)).tokens);
    } finally {
      await small.close();
    }
  });
});
