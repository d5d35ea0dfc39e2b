import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../../services/inference/engine.ts";
import { writeSafetensors, type TensorToWrite } from "../../../services/model/safetensors.ts";
import { collect, params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";
import { hfShape, randomWeights, tinyConfig } from "../../helpers/tiny-model.ts";

/**
 * A random tiny model folder with the stories260k tokenizer whose final norm is all zeros, so every
 * logit is 0 and greedy decoding picks token 0, which its config declares an end-of-sequence token.
 */
async function eosModelFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "sy-eos-model-"));
  const config = tinyConfig({ vocabSize: 512, maxPositionEmbeddings: 128 });
  const weights = randomWeights(config, 9);
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of weights.names()) {
    const data = name === "model.norm.weight" ? new Float32Array(config.hiddenSize) : weights.getF32(name);
    tensors[name] = { dtype: "F32", shape: hfShape(config, name), data };
  }
  await writeFile(join(dir, "model.safetensors"), writeSafetensors(tensors));
  const json = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    vocab_size: config.vocabSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 0,
  };
  await writeFile(join(dir, "config.json"), JSON.stringify(json));
  const tokenizerDir = findModel("stories260k");
  for (const file of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(tokenizerDir, file), join(dir, file));
  return dir;
}

describe("engine end of sequence", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("stops with finish reason 'stop' when the model emits an end-of-sequence token, without its text", async () => {
    const modelDir = await eosModelFolder();
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-eos-cache-"));
    dirs.push(modelDir, cacheDir);
    const engine = await createEngine({ modelDir, cacheDir });
    try {
      const result = await collect(engine.generate({ promptTokens: [1, 403, 407], params: params({ maxTokens: 20 }) }));
      expect(result.done).toMatchObject({ finishReason: "stop", completionTokens: 1 });
      expect(result.text).toBe("");
    } finally {
      await engine.close();
    }
  });
});
