import { describe, expect, it } from "vitest";
import { AdapterError } from "../../../services/adapters/errors.ts";
import { adapterHeaderLimits, loadPeftAdapter, validatePeftAdapter, type BaseModelShape } from "../../../services/adapters/peft.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { writeSafetensors } from "../../../services/model/safetensors.ts";
import { STORIES, utf8 } from "../../helpers/adapters.ts";

const limits = { maxRank: 16 };

function refusal(fn: () => unknown): AdapterError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AdapterError) return e;
    throw e;
  }
  throw new Error("expected the adapter to be refused");
}

const maxAbsDiff = (actual: Float32Array, expected: number[]) => expected.reduce((worst, e, i) => Math.max(worst, Math.abs(actual[i]! - e)), 0);

const withConfig = (extra: Record<string, unknown>, options = {}) => randomPeftAdapter(STORIES, { rank: 4, ...options, extraConfig: extra }).files;

describe("PEFT import: conversion", () => {
  it("transposes A and folds alpha/r into B^T for every module", () => {
    const adapter = randomPeftAdapter(STORIES, { rank: 4, alpha: 12, targets: ["q_proj", "down_proj"] });
    const weights = loadPeftAdapter("ad_1", adapter.files, STORIES, limits);
    const layers = Array.from({ length: STORIES.numLayers }, (_, l) => l);
    const expectedKeys = layers.flatMap((l) => [`layers.${l}.q_proj`, `layers.${l}.down_proj`]);
    expect([...weights.modules.keys()].sort()).toEqual(expectedKeys.sort());
    expect(weights.maxRank).toBe(4);
    const rank = 4;
    const scale = 12 / 4;
    const dims = [
      { target: "q_proj", section: "self_attn", inFeatures: 64, outFeatures: 64 },
      { target: "down_proj", section: "mlp", inFeatures: 172, outFeatures: 64 },
    ] as const;
    for (const l of layers) {
      for (const { target, section, inFeatures, outFeatures } of dims) {
        const m = weights.modules.get(`layers.${l}.${target}`)!;
        const A = adapter.tensors[`base_model.model.model.layers.${l}.${section}.${target}.lora_A.weight`]!; // [rank, in]
        const B = adapter.tensors[`base_model.model.model.layers.${l}.${section}.${target}.lora_B.weight`]!; // [out, rank]
        expect(m.a.length).toBe(inFeatures * rank);
        expect(m.b.length).toBe(rank * outFeatures);
        const a = Array.from({ length: inFeatures * rank }, (_, j) => A.data[(j % rank) * inFeatures + Math.floor(j / rank)]!); // A^T: [in, rank]
        const b = Array.from({ length: rank * outFeatures }, (_, j) => scale * B.data[(j % outFeatures) * rank + Math.floor(j / outFeatures)]!); // scale * B^T: [rank, out]
        expect(Array.from(m.a)).toEqual(a);
        expect(maxAbsDiff(m.b, b)).toBeLessThan(1e-6);
      }
    }
    expect(weights.bytes).toBe([...weights.modules.values()].reduce((n, m) => n + m.a.byteLength + m.b.byteLength, 0));
  });

  it("uses alpha/sqrt(r) with rsLoRA and per-module rank/alpha from the patterns", () => {
    const adapter = randomPeftAdapter(STORIES, {
      rank: 4,
      alpha: 8,
      useRslora: true,
      targets: ["q_proj", "v_proj"],
      rankPattern: { "layers.1.self_attn.q_proj": 8 },
      alphaPattern: { v_proj: 2 },
    });
    const weights = loadPeftAdapter("ad_2", adapter.files, STORIES, limits);
    expect(weights.modules.get("layers.1.q_proj")!.rank).toBe(8);
    expect(weights.modules.get("layers.0.q_proj")!.rank).toBe(4);
    expect(weights.maxRank).toBe(8);
    const check = (key: "layers.1.q_proj" | "layers.3.v_proj", stem: string, rank: number, out: number, scale: number) => {
      const B = adapter.tensors[`base_model.model.${stem}.lora_B.weight`]!;
      expect(weights.modules.get(key)!.b[0 * out + 5]).toBeCloseTo(scale * B.data[5 * rank + 0]!, 6);
    };
    check("layers.1.q_proj", "model.layers.1.self_attn.q_proj", 8, 64, 8 / Math.sqrt(8));
    check("layers.3.v_proj", "model.layers.3.self_attn.v_proj", 4, 32, 2 / Math.sqrt(4));
  });

  it("accepts a regex string for target_modules and half-precision weights", () => {
    const adapter = randomPeftAdapter(STORIES, { targets: ["k_proj", "up_proj"], dtype: "BF16" });
    const files = { ...adapter.files, config: utf8(JSON.stringify({ ...adapter.config, target_modules: ".*\\.(k_proj|up_proj)" })) };
    const validated = validatePeftAdapter(files, STORIES, limits);
    expect(validated.summary.targetModules).toEqual(["k_proj", "up_proj"]);
  });

  it("accepts adapter_config.json as PEFT writes it, with every field it saves", () => {
    const adapter = randomPeftAdapter(STORIES, { rank: 8, alpha: 16, targets: ["v_proj", "q_proj"] });
    const peftWritten = {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "karpathy/stories260K",
      bias: "none",
      corda_config: null,
      eva_config: null,
      exclude_modules: null,
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 16,
      lora_bias: false,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: null,
      peft_type: "LORA",
      r: 8,
      rank_pattern: {},
      revision: null,
      target_modules: ["v_proj", "q_proj"],
      target_parameters: null,
      task_type: "CAUSAL_LM",
      trainable_token_indices: null,
      use_dora: false,
      use_rslora: false,
    };
    const validated = validatePeftAdapter({ ...adapter.files, config: utf8(JSON.stringify(peftWritten)) }, STORIES, limits);
    expect(validated.summary).toEqual({ rank: 8, alpha: 16, targetModules: ["q_proj", "v_proj"], baseModel: "karpathy/stories260K" });
    expect(validated.modules.map((m) => [m.key, m.scale]).sort()).toEqual(
      Array.from({ length: STORIES.numLayers }, (_, l) => [[`layers.${l}.q_proj`, 2], [`layers.${l}.v_proj`, 2]]).flat().sort(),
    );
  });
});

describe("PEFT import: refusals name the exact reason", () => {
  const cases: Array<[string, () => unknown, string, RegExp]> = [
    ["fan_in_fan_out", () => validatePeftAdapter(withConfig({ fan_in_fan_out: true }), STORIES, limits), "unsupported_option", /fan_in_fan_out/],
    ["modules_to_save", () => validatePeftAdapter(withConfig({ modules_to_save: ["lm_head"] }), STORIES, limits), "unsupported_option", /modules_to_save \["lm_head"\]/],
    ["DoRA", () => validatePeftAdapter(withConfig({ use_dora: true }), STORIES, limits), "unsupported_option", /DoRA/],
    ["bias", () => validatePeftAdapter(withConfig({ bias: "lora_only" }), STORIES, limits), "unsupported_option", /bias "lora_only"/],
    ["peft_type", () => validatePeftAdapter(withConfig({ peft_type: "IA3" }), STORIES, limits), "unsupported_option", /peft_type "IA3"/],
    ["layer_replication", () => validatePeftAdapter(withConfig({ layer_replication: [[0, 4], [2, 5]] }), STORIES, limits), "unsupported_option", /layer_replication/],
    ["rank too high", () => validatePeftAdapter(randomPeftAdapter(STORIES, { rank: 32 }).files, STORIES, limits), "rank_too_high", /rank 32, above this node's maximum rank 16/],
    ["unknown target", () => validatePeftAdapter(withConfig({ target_modules: ["c_attn"] }), STORIES, limits), "unknown_module", /"c_attn" matches no linear layer/],
    ["bad JSON", () => validatePeftAdapter({ config: utf8("{nope"), model: new Uint8Array() }, STORIES, limits), "invalid_config", /not valid JSON/],
    ["bad r", () => validatePeftAdapter(withConfig({ r: -1 }), STORIES, limits), "invalid_config", /at r\b/],
  ];
  for (const [what, run, code, message] of cases) {
    it(`refuses ${what}`, () => {
      const e = refusal(run);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(message);
    });
  }

  it("bounds the safetensors header by what the base model can need: 2 x 7 targets x layers tensors", () => {
    expect(adapterHeaderLimits(STORIES)).toMatchObject({ maxTensors: 70 });
    // The largest real adapter (every target of every layer) fits...
    const full = randomPeftAdapter(STORIES, { rank: 16, targets: "all-linear" }).files;
    expect(validatePeftAdapter(full, STORIES, limits).modules).toHaveLength(35);
    // ...one tensor more is refused while the header is read, before any name is looked at.
    const tensors = Object.fromEntries(Array.from({ length: 71 }, (_, i) => [`t${i}`, { dtype: "F32" as const, shape: [1], data: new Float32Array(1) }]));
    const e = refusal(() => validatePeftAdapter({ config: full.config, model: writeSafetensors(tensors) }, STORIES, limits));
    expect(e.code).toBe("too_many_tensors");
    expect(e.message).toMatch(/lists more than 70 tensors \(an adapter for this 5-layer base model has at most 2 x 7 targets x 5 layers = 70 tensors\)/);
  });

  it("refuses weights shaped for another model", () => {
    const wider: BaseModelShape = { ...STORIES, hiddenSize: 96, numHeads: 12, numKvHeads: 6 };
    const e = refusal(() => validatePeftAdapter(randomPeftAdapter(wider, { targets: ["q_proj"] }).files, STORIES, limits));
    expect(e.code).toBe("shape_mismatch");
    expect(e.message).toMatch(/layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[4,96\] but .* need \[4,64\]/);
  });

  it("refuses a rank that disagrees with the config", () => {
    const adapter = randomPeftAdapter(STORIES, { rank: 4, targets: ["o_proj"] });
    const files = { ...adapter.files, config: utf8(JSON.stringify({ ...adapter.config, r: 2 })) };
    expect(refusal(() => validatePeftAdapter(files, STORIES, limits)).code).toBe("shape_mismatch");
  });

  it("refuses keys for modules the base model does not have", () => {
    const deep = randomPeftAdapter({ ...STORIES, numLayers: 6 }, { targets: ["v_proj"] }).files;
    const e = refusal(() => validatePeftAdapter(deep, STORIES, limits));
    expect(e.code).toBe("unknown_module");
    expect(e.message).toMatch(/"model\.layers\.5\.self_attn\.v_proj", which the base model does not have/);

    const model = writeSafetensors({
      "base_model.model.model.layers.0.mlp.q_proj.lora_A.weight": { dtype: "F32", shape: [4, 64], data: new Float32Array(256) },
      "base_model.model.model.layers.0.mlp.q_proj.lora_B.weight": { dtype: "F32", shape: [64, 4], data: new Float32Array(256) },
    });
    const misplaced = { config: withConfig({ target_modules: ["q_proj"] }).config, model };
    expect(refusal(() => validatePeftAdapter(misplaced, STORIES, limits)).message).toMatch(/module "model\.layers\.0\.mlp\.q_proj"/);
  });

  it("refuses tensors that are not LoRA weights and weights target_modules does not select", () => {
    const adapter = randomPeftAdapter(STORIES, { targets: ["q_proj"] });
    const magnitude = writeSafetensors({
      ...Object.fromEntries(Object.entries(adapter.tensors).map(([k, t]) => [k, { dtype: "F32" as const, ...t }])),
      "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector": { dtype: "F32", shape: [64], data: new Float32Array(64) },
    });
    expect(refusal(() => validatePeftAdapter({ ...adapter.files, model: magnitude }, STORIES, limits)).message).toMatch(/lora_magnitude_vector" is not a LoRA weight/);
    const narrower = { ...adapter.files, config: utf8(JSON.stringify({ ...adapter.config, target_modules: ["q_proj"], layers_to_transform: [0] })) };
    expect(refusal(() => validatePeftAdapter(narrower, STORIES, limits)).message).toMatch(/layers\.1\.self_attn\.q_proj", which target_modules does not select/);
  });

  it("refuses an adapter missing weights for a selected module", () => {
    const adapter = randomPeftAdapter(STORIES, { targets: ["q_proj"] });
    const files = { ...adapter.files, config: utf8(JSON.stringify({ ...adapter.config, target_modules: ["q_proj", "k_proj"] })) };
    expect(refusal(() => validatePeftAdapter(files, STORIES, limits)).message).toMatch(/selects "model\.layers\.0\.self_attn\.k_proj" but .* no lora_A\/lora_B/);
  });

  it("refuses corrupt safetensors", () => {
    const good = randomPeftAdapter(STORIES, { targets: ["q_proj"] }).files;
    const truncated = { ...good, model: good.model.subarray(0, good.model.byteLength - 100) };
    const e = refusal(() => validatePeftAdapter(truncated, STORIES, limits));
    expect(e.code).toBe("corrupt_safetensors");
    expect(e.message).toMatch(/outside the data/);
    const garbage = { ...good, model: utf8("definitely not safetensors") };
    expect(refusal(() => validatePeftAdapter(garbage, STORIES, limits)).code).toBe("corrupt_safetensors");
  });
});
