import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadDecoderConfig, parseDecoderConfig } from "../../../services/model/config.ts";
import { findSharedModel } from "../../helpers/model-fixtures.ts";

const base = {
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  vocab_size: 100,
};

describe("parseDecoderConfig", () => {
  it("reads the real stories260k config", async () => {
    const config = await loadDecoderConfig(findSharedModel("stories260k"));
    expect(config).toMatchObject({
      architecture: "llama",
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxPositionEmbeddings: 512,
      tieWordEmbeddings: true,
      attentionBias: false,
      bosTokenId: 1,
      eosTokenIds: [2],
    });
    expect(config.rmsNormEps).toBeCloseTo(1e-5, 12);
    expect(config.ropeScaling).toBeUndefined();
  });

  it("defaults head_dim to hidden/heads and kv heads to heads", () => {
    const config = parseDecoderConfig({ ...base, model_type: "mistral" });
    expect(config.headDim).toBe(8);
    expect(config.numKvHeads).toBe(8);
    expect(config.eosTokenIds).toEqual([]);
  });

  it("gives qwen2 attention biases and honours llama attention_bias", () => {
    expect(parseDecoderConfig({ ...base, model_type: "qwen2" }).attentionBias).toBe(true);
    expect(parseDecoderConfig({ ...base, model_type: "llama", attention_bias: true }).attentionBias).toBe(true);
    expect(parseDecoderConfig({ ...base, model_type: "llama" }).attentionBias).toBe(false);
  });

  it("detects the architecture from architectures when model_type is absent", () => {
    expect(parseDecoderConfig({ ...base, architectures: ["Qwen2ForCausalLM"] }).architecture).toBe("qwen2");
  });

  it("accepts eos_token_id as a list and an explicit head_dim", () => {
    const config = parseDecoderConfig({ ...base, model_type: "llama", head_dim: 16, num_key_value_heads: 2, eos_token_id: [5, 7] });
    expect(config.headDim).toBe(16);
    expect(config.numKvHeads).toBe(2);
    expect(config.eosTokenIds).toEqual([5, 7]);
  });

  it("parses llama3 rope_scaling under rope_type or type", () => {
    const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    for (const key of ["rope_type", "type"]) {
      const config = parseDecoderConfig({ ...base, model_type: "llama", rope_theta: 500000, rope_scaling: { ...scaling, [key]: "llama3" } });
      expect(config.ropeTheta).toBe(500000);
      expect(config.ropeScaling).toEqual({ type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    }
  });

  it("caps the context at a sliding attention window, and rejects MLP biases", () => {
    expect(parseDecoderConfig({ ...base, model_type: "mistral", max_position_embeddings: 32768, sliding_window: 4096 }).maxPositionEmbeddings).toBe(4096);
    expect(parseDecoderConfig({ ...base, model_type: "mistral", max_position_embeddings: 32768, sliding_window: null }).maxPositionEmbeddings).toBe(32768);
    const qwen = { ...base, model_type: "qwen2", max_position_embeddings: 32768, sliding_window: 4096 };
    expect(parseDecoderConfig({ ...qwen, use_sliding_window: false }).maxPositionEmbeddings).toBe(32768);
    expect(parseDecoderConfig({ ...qwen, use_sliding_window: true }).maxPositionEmbeddings).toBe(4096);
    expect(() => parseDecoderConfig({ ...base, model_type: "llama", mlp_bias: true })).toThrow(/mlp_bias is not supported/);
    expect(() => parseDecoderConfig({ ...base, model_type: "llama", hidden_act: "gelu" })).toThrow(/unsupported hidden_act "gelu"/);
  });

  it("rejects other rope scalings, unsupported architectures and bad numbers clearly", () => {
    expect(() => parseDecoderConfig({ ...base, model_type: "llama", rope_scaling: { type: "yarn", factor: 4 } })).toThrow(/rope_scaling type "yarn"/);
    expect(() => parseDecoderConfig({ ...base, model_type: "gpt2" })).toThrow(/unsupported model_type "gpt2"/);
    expect(() => parseDecoderConfig({ ...base, architectures: ["FalconForCausalLM"] })).toThrow(/FalconForCausalLM/);
    expect(() => parseDecoderConfig({ ...base, model_type: "llama", num_key_value_heads: 3 })).toThrow(/multiple of num_key_value_heads/);
    expect(() => parseDecoderConfig({ ...base, model_type: "llama", hidden_size: -1 })).toThrow(/hidden_size/);
  });

  it("merges eos ids from generation_config.json", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-config-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...base, model_type: "llama", eos_token_id: 5 }));
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [5, 9], bos_token_id: 3 }));
    const config = await loadDecoderConfig(dir);
    expect(config.eosTokenIds).toEqual([5, 9]);
    expect(config.bosTokenId).toBe(3);
  });

  it("names the folder when config.json is missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-config-"));
    await expect(loadDecoderConfig(dir)).rejects.toThrow(/no config.json/);
  });
});
