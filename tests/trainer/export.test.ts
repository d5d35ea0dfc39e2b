/**
 * PEFT export round trip on stories260k: a trained adapter (random A and B, as after some steps)
 * exported by the trainer, read back through the real upload path (readAdapterUpload: the two files,
 * and a folder under the LoRA directory) and loadPeftAdapter, gives
 *   1. exactly the trainer's graph weights (Aᵀ, (s·B)ᵀ), and
 *   2. in the serving engine (unpinnedAdapters), the logprob of every token of a prompt and of its
 *      greedy continuation that the training graph gives when fed the trainer's matrices.
 */
import { readFile } from "node:fs/promises";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../services/adapters/peft.ts";
import { readAdapterUpload, type UploadRules } from "../../services/adapters/upload.ts";
import { createEngine, type Engine, unpinnedAdapters } from "../../services/inference/engine.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../services/model/config.ts";
import { writeOnnx } from "../../services/model/graph/onnx.ts";
import { buildTrainingGraph } from "../../services/model/llama/training-graph.ts";
import type { LoraWeights } from "../../services/model/lora-layout.ts";
import { parseSafetensorsBytes } from "../../services/model/safetensors.ts";
import { exportPeftAdapter, PEFT_CONFIG_FILE, PEFT_MODEL_FILE, peftConfig, writePeftFolder } from "../../trainer/export.ts";
import { fromGraphWeights, initLoraParams, type LoraParams, type LoraSpec, parameters, toGraphWeights, trainingFeeds } from "../../trainer/lora-params.ts";
import { argmax, expectClose, expectDifferent } from "../helpers/compare.ts";
import { params as sampling } from "../helpers/generate.ts";
import { findModel } from "../helpers/model-path.ts";
import { seededRandom } from "../helpers/prng.ts";
import { MemoryWeights } from "../helpers/tiny-model.ts";

const SPEC: LoraSpec = { targets: ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"], rank: 8, alpha: 16 };
const STEPS = 8;
const TOLERANCE = 1e-4;

/** A "trained" adapter: PEFT's init for A, then every A and B entry moved by a random amount. */
function trained(config: DecoderConfig, spec: LoraSpec, seed: number): LoraParams {
  const params = initLoraParams(config, spec, seed);
  const random = seededRandom(seed + 1);
  for (const p of parameters(params)) for (let k = 0; k < p.length; k++) p[k] = p[k]! + (random.next() - 0.5) * 0.2;
  return params;
}

describe("PEFT export -> upload path -> serving engine (stories260k)", () => {
  const dirs: string[] = [];
  let modelDir: string;
  let config: DecoderConfig;
  let rules: UploadRules;
  const tempDir = async (prefix: string) => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  beforeAll(async () => {
    modelDir = findModel("stories260k");
    config = await loadDecoderConfig(modelDir);
    rules = { maxBytes: 16 << 20, base: config, limits: { maxRank: 16 }, loraDir: await tempDir("sy-trainer-loradir-") };
  });
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  const expectSameWeights = (got: LoraWeights, want: LoraWeights) => {
    expect([...got.modules.keys()].sort()).toEqual([...want.modules.keys()].sort());
    expect(got.maxRank).toBe(want.maxRank);
    for (const [key, w] of want.modules) {
      const g = got.modules.get(key)!;
      expect(g.rank, key).toBe(w.rank);
      expect(g.a, `${key} a`).toEqual(w.a);
      expect(g.b, `${key} b`).toEqual(w.b);
    }
  };

  it.each([
    ["alpha/r", SPEC],
    ["rsLoRA", { ...SPEC, alpha: 5, useRslora: true }],
  ])("imports (%s) as exactly the trainer's graph weights, from the two files and from a folder", async (_, spec: LoraSpec) => {
    const params = trained(config, spec, 11);
    const files = exportPeftAdapter(params, { baseModel: "stories260k" });
    const upload = await readAdapterUpload({ config: files.config, model: files.model, modelFileName: PEFT_MODEL_FILE }, rules);
    expect(upload.summary).toEqual({ kind: "lora", numVirtualTokens: null, rank: spec.rank, alpha: spec.alpha, targetModules: SPEC.targets });
    const want = toGraphWeights(params, "trained");
    const loaded = loadPeftAdapter("trained", upload.files, config, rules.limits);
    expectSameWeights(loaded, want);
    // ...and back to the trainer's layout (continuing from an uploaded adapter): A exact, B up to s·B's rounding.
    fromGraphWeights(loaded, config, spec).modules.forEach((m, k) => {
      expect(m.a).toEqual(params.modules[k]!.a);
      expectClose(m.b, params.modules[k]!.b, 1e-7, `${m.key} B`);
    });

    const name = spec.useRslora ? "rslora" : "plain";
    const paths = await writePeftFolder(join(rules.loraDir!, name), files);
    expect(new Uint8Array(await readFile(paths.config))).toEqual(files.config);
    const fromFolder = await readAdapterUpload({ path: name }, rules);
    expectSameWeights(loadPeftAdapter("trained", fromFolder.files, config, rules.limits), want);
  });

  it("writes the adapter_config.json fields PEFT and the upload checks read", () => {
    const params = trained(config, SPEC, 1);
    const json = JSON.parse(new TextDecoder().decode(exportPeftAdapter(params, { baseModel: "org/base" }).config)) as Record<string, unknown>;
    expect(json).toEqual(peftConfig(params, { baseModel: "org/base" }));
    expect(json).toMatchObject({
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      base_model_name_or_path: "org/base",
      r: 8,
      lora_alpha: 16,
      use_rslora: false,
      target_modules: SPEC.targets,
      bias: "none",
      fan_in_fan_out: false,
      use_dora: false,
      modules_to_save: null,
    });
    expect(PEFT_CONFIG_FILE).toBe("adapter_config.json");
  });

  it("writes PEFT's tensor names and shapes, F32: lora_A [r, in], lora_B [out, r], as the trainer holds them", () => {
    const params = trained(config, SPEC, 2);
    const store = parseSafetensorsBytes(exportPeftAdapter(params, { baseModel: "stories260k" }).model);
    try {
      expect(store.names()).toHaveLength(2 * SPEC.targets.length * config.numLayers);
      const stem = "base_model.model.model.layers.4.mlp.down_proj";
      expect(store.info(`${stem}.lora_A.weight`)).toEqual({ dtype: "F32", shape: [8, config.intermediateSize] });
      expect(store.info(`${stem}.lora_B.weight`)).toEqual({ dtype: "F32", shape: [config.hiddenSize, 8] });
      expect(store.info("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight").shape).toEqual([config.numKvHeads * config.headDim, 8]);
      const m = params.modules.find((x) => x.key === "layers.4.down_proj")!;
      expect(store.getF32(`${stem}.lora_A.weight`)).toEqual(m.a);
      expect(store.getF32(`${stem}.lora_B.weight`)).toEqual(m.b);
    } finally {
      store.close();
    }
  });

  it("serves the exported adapter with the logprobs the training graph gives for the same matrices", async () => {
    const params = trained(config, SPEC, 21);
    const files = exportPeftAdapter(params, { baseModel: "stories260k" });
    const cacheDir = await tempDir("sy-trainer-engine-");
    const engine: Engine = await createEngine({ modelDir, cacheDir, maxBatch: 2, adapters: unpinnedAdapters(async (id) => loadPeftAdapter(id, files, config, rules.limits)) });
    let served: { tokens: number[]; logprobs: number[]; promptLogprobs: (number | null)[] };
    let plain: number[];
    const prompt = engine.tokenize("Once upon a time");
    try {
      served = await run(engine, prompt, "trained");
      plain = (await run(engine, prompt, undefined)).tokens;
    } finally {
      await engine.close();
    }
    expect(served.tokens.length).toBe(STEPS);
    expect(served.tokens, "the adapter changes the greedy continuation").not.toEqual(plain);

    // The training graph on prompt + continuation: position t's logits predict token t + 1.
    const sequence = [...prompt, ...served.tokens];
    const T = sequence.length - 1;
    const logits = await trainingLogits(modelDir, config, sequence.slice(0, T), trainingFeeds(params, config), await tempDir("sy-trainer-graph-"));
    const V = config.vocabSize;
    const at = (t: number) => logits.subarray(t * V, (t + 1) * V);
    const logprobOf = (t: number, token: number) => logSoftmax(at(t))[token]!;

    const fromGraph = Array.from({ length: T }, (_, t) => logprobOf(t, sequence[t + 1]!));
    const fromEngine = [...served.promptLogprobs.slice(1), ...served.logprobs] as number[];
    expect(served.promptLogprobs[0]).toBeNull();
    expectClose(fromGraph, fromEngine, TOLERANCE, "logprob of every token after the first"); // about 1e-5 here
    served.tokens.forEach((token, k) => expect(argmax(at(prompt.length - 1 + k)), `greedy step ${k}`).toBe(token));

    // Not vacuous: the same graph with the adapter zeroed gives other logits.
    const zero = initLoraParams(config, SPEC, 1);
    const base = await trainingLogits(modelDir, config, sequence.slice(0, T), trainingFeeds(zero, config), await tempDir("sy-trainer-graph-"));
    expectDifferent(logits, base, 1e-2);
  });
});

async function run(engine: Engine, prompt: number[], adapter: string | undefined) {
  const out = { tokens: [] as number[], logprobs: [] as number[], promptLogprobs: [] as (number | null)[] };
  const events = engine.generate({ promptTokens: prompt, params: sampling({ maxTokens: STEPS, logprobs: 0 }), promptLogprobs: 0, adapter });
  for await (const e of events) {
    if (e.type === "prompt") out.promptLogprobs = e.logprobs.map((l) => l.logprob);
    if (e.type === "text" && e.logprob) {
      out.tokens.push(e.tokenId);
      out.logprobs.push(e.logprob.logprob);
    }
  }
  return out;
}

/** Logits [T, vocab] of the training graph for one unpadded sequence. */
async function trainingLogits(
  modelDir: string,
  config: DecoderConfig,
  tokens: number[],
  lora: ReturnType<typeof trainingFeeds>,
  dir: string,
): Promise<Float32Array> {
  const weights = await MemoryWeights.load(modelDir);
  const session = await ort.InferenceSession.create((await writeOnnx(buildTrainingGraph(config, weights), dir)).modelPath);
  const ids = (xs: number[]) => new ort.Tensor("int64", BigInt64Array.from(xs.map(BigInt)), [1, xs.length]);
  const feeds = Object.fromEntries(Object.entries(lora).map(([n, f]) => [n, new ort.Tensor("float32", f.data, f.dims)]));
  const { logits } = await session.run({ input_ids: ids(tokens), position_ids: ids(tokens.map((_, t) => t)), attention_mask: ids(tokens.map(() => 1)), ...feeds });
  await session.release();
  return logits!.data as Float32Array;
}

/** log softmax in float64. */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const log = Math.log(sum);
  return Float64Array.from(row, (v) => v - max - log);
}
