import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { writeOnnx } from "../../services/model/graph/onnx.ts";
import { buildTrainingGraph } from "../../services/model/llama/training-graph.ts";
import { LORA_TARGETS, loraInputName, projectionShape } from "../../services/model/lora-layout.ts";
import { ReferenceDecoder } from "../../services/model/reference.ts";
import {
  cloneLoraParams,
  fromGraphWeights,
  gradientsFromGraph,
  initLoraParams,
  loraScale,
  type LoraParams,
  type LoraSpec,
  parameters,
  toGraphWeights,
  trainingFeeds,
  transposed,
} from "../../trainer/lora-params.ts";
import { expectClose } from "../helpers/compare.ts";
import { seededRandom } from "../helpers/prng.ts";
import { randomWeights, tinyConfig } from "../helpers/tiny-model.ts";

const config = tinyConfig(); // 2 layers, hidden 24, intermediate 37, 6 heads / 2 kv heads of 4
const SPEC: LoraSpec = { targets: ["v_proj", "q_proj", "down_proj"], rank: 4, alpha: 8 };

/** Params with every tensor random (a "trained" adapter: B no longer zero). */
function randomized(params: LoraParams, seed: number): LoraParams {
  const random = seededRandom(seed);
  const out = cloneLoraParams(params);
  for (const p of parameters(out)) for (let k = 0; k < p.length; k++) p[k] = random.next() - 0.5;
  return out;
}

describe("LoRA parameters (PEFT layout)", () => {
  it("initialises as PEFT: A ~ U(-1/√in, 1/√in) [r, in], B = 0 [out, r], modules in layout order", () => {
    const params = initLoraParams(config, SPEC, 42);
    expect(params.scale).toBe(2);
    expect(params.modules.map((m) => m.key)).toEqual(["layers.0.q_proj", "layers.0.v_proj", "layers.0.down_proj", "layers.1.q_proj", "layers.1.v_proj", "layers.1.down_proj"]);
    for (const m of params.modules) {
      const { in: inF, out } = projectionShape(config, m.target);
      expect([m.inFeatures, m.outFeatures]).toEqual([inF, out]);
      expect(m.a.length).toBe(SPEC.rank * inF);
      expect(m.b).toEqual(new Float32Array(out * SPEC.rank));
      const bound = 1 / Math.sqrt(inF);
      expect(Math.max(...m.a.map(Math.abs))).toBeLessThanOrEqual(bound);
    }
    // Uniform on (-bound, bound): over all of a module type, mean ≈ 0 and E[x²] ≈ bound²/3.
    const a = Float64Array.from(params.modules.filter((m) => m.target === "down_proj").flatMap((m) => [...m.a]).map((x) => x * Math.sqrt(37)));
    const mean = a.reduce((s, x) => s + x, 0) / a.length;
    const second = a.reduce((s, x) => s + x * x, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.08);
    expect(Math.abs(second - 1 / 3)).toBeLessThan(0.05);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.97);
  });

  it("is deterministic for a seed and differs across seeds", () => {
    expect(initLoraParams(config, SPEC, 7)).toEqual(initLoraParams(config, SPEC, 7));
    expect(initLoraParams(config, SPEC, 7).modules[0]!.a).not.toEqual(initLoraParams(config, SPEC, 8).modules[0]!.a);
  });

  it("scales by alpha/r, or alpha/√r with rsLoRA", () => {
    expect(loraScale({ targets: ["q_proj"], rank: 16, alpha: 32 })).toBe(2);
    expect(loraScale({ targets: ["q_proj"], rank: 16, alpha: 32, useRslora: true })).toBe(8);
  });

  it("converts to the graph's layout a = Aᵀ, b = (s·B)ᵀ and back", () => {
    for (const spec of [SPEC, { ...SPEC, alpha: 3, useRslora: true }]) {
      const params = randomized(initLoraParams(config, spec, 1), 2);
      const weights = toGraphWeights(params, "x");
      expect(weights.maxRank).toBe(4);
      const m = params.modules[2]!; // layer 0 down_proj: A [4, 37], B [24, 4]
      const w = weights.modules.get("layers.0.down_proj")!;
      for (const [j, i] of [[0, 0], [3, 36], [2, 5]]) expect(w.a[i! * 4 + j!]).toBe(m.a[j! * 37 + i!]);
      for (const [o, j] of [[0, 0], [23, 3], [7, 1]]) expect(w.b[j! * 24 + o!]).toBe(Math.fround(params.scale * m.b[o! * 4 + j!]!));
      const back = fromGraphWeights(weights, config, spec);
      back.modules.forEach((b, k) => {
        expect(b.a).toEqual(params.modules[k]!.a);
        expectClose(b.b, params.modules[k]!.b, 1e-7, `${b.key} B`);
      });
    }
    const weights = toGraphWeights(initLoraParams(config, SPEC, 1), "x");
    expect(() => fromGraphWeights(weights, config, { ...SPEC, targets: ["q_proj"] })).toThrow(/has 6 modules, the spec trains 2/);
  });

  it("feeds every LoRA input of the training graph, zeros for the targets it leaves out", () => {
    const params = randomized(initLoraParams(config, SPEC, 1), 3);
    const feeds = trainingFeeds(params, config);
    const graph = buildTrainingGraph(config, randomWeights(config, 1));
    const inputs = graph.inputs.filter((v) => v.name.startsWith("lora."));
    expect(Object.keys(feeds).sort()).toEqual(inputs.map((v) => v.name).sort());
    for (const v of inputs) {
      const feed = feeds[v.name]!;
      expect(feed.data.length).toBe(feed.dims[0]! * feed.dims[1]!);
      expect(v.shape).toHaveLength(2);
      v.shape!.forEach((d, k) => (typeof d === "number" ? expect(feed.dims[k]).toBe(d) : expect(feed.dims[k]).toBe(4)));
    }
    const weights = toGraphWeights(params, "x");
    for (let layer = 0; layer < 2; layer++) {
      for (const t of LORA_TARGETS) {
        const w = weights.modules.get(`layers.${layer}.${t}`);
        expect(feeds[loraInputName(layer, t, "a")]!.data).toEqual(w?.a ?? new Float32Array(feeds[loraInputName(layer, t, "a")]!.data.length));
        expect(feeds[loraInputName(layer, t, "b")]!.data).toEqual(w?.b ?? new Float32Array(feeds[loraInputName(layer, t, "b")]!.data.length));
      }
    }
  });

  it("pulls graph-layout gradients back by the chain rule: dL/dA = (dL/da)ᵀ, dL/dB = s·(dL/db)ᵀ", () => {
    // L(A, B) = Σ_inputs ⟨C_input, feed_input(A, B)⟩ is linear, with ∂L/∂feed = C. Its directional
    // derivative along (ΔA, ΔB) is L evaluated on the feeds of (ΔA, ΔB); the pulled-back gradient
    // must give the same number as ⟨∇_A L, ΔA⟩ + ⟨∇_B L, ΔB⟩.
    const spec = { ...SPEC, alpha: 5, useRslora: true };
    const params = randomized(initLoraParams(config, spec, 1), 4);
    const random = seededRandom(9);
    const cotangents = Object.fromEntries(Object.entries(trainingFeeds(params, config)).map(([name, f]) => [name, Float32Array.from(f.data, () => random.next() - 0.5)]));
    const grads = gradientsFromGraph(params, (name) => cotangents[name]!);
    expect(grads.map((g) => g.length)).toEqual(parameters(params).map((p) => p.length));

    for (const seed of [1, 2, 3]) {
      const direction = randomized(params, 100 + seed);
      let viaFeeds = 0;
      for (const [name, f] of Object.entries(trainingFeeds(direction, config))) f.data.forEach((x, k) => (viaFeeds += x * cotangents[name]![k]!));
      let viaGrads = 0;
      parameters(direction).forEach((d, i) => d.forEach((x, k) => (viaGrads += x * grads[i]![k]!)));
      expect(Math.abs(viaGrads - viaFeeds)).toBeLessThan(1e-4 * Math.max(1, Math.abs(viaFeeds)));
    }
    expect(transposed(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3, 2)).toEqual(new Float32Array([2, 8, 4, 10, 6, 12]));
  });

  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("a fresh adapter leaves the model unchanged: the training graph fed its feeds gives the base logits", async () => {
    const weights = randomWeights(config, 5);
    const dir = await mkdtemp(join(tmpdir(), "sy-lora-params-"));
    dirs.push(dir);
    const session = await ort.InferenceSession.create((await writeOnnx(buildTrainingGraph(config, weights), dir)).modelPath);
    const tokens = [1, 5, 17, 42, 9];
    const ids = (xs: number[]) => new ort.Tensor("int64", BigInt64Array.from(xs.map(BigInt)), [1, xs.length]);
    const feeds = Object.fromEntries(Object.entries(trainingFeeds(initLoraParams(config, SPEC, 3), config)).map(([n, f]) => [n, new ort.Tensor("float32", f.data, f.dims)]));
    const { logits } = await session.run({ input_ids: ids(tokens), position_ids: ids([0, 1, 2, 3, 4]), attention_mask: ids([1, 1, 1, 1, 1]), ...feeds });
    const base = new ReferenceDecoder(config, (n) => weights.getF32(n));
    const expected = base.forward(base.newCache(), tokens);
    const V = config.vocabSize;
    expected.forEach((row, t) => expectClose((logits!.data as Float32Array).subarray(t * V, (t + 1) * V), row, 1e-4, `position ${t}`));
  });
});
