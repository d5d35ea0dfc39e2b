import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { loadTokenizer } from "../../../services/model/tokenizer.ts";
import { createOnnxEncoder } from "../../../services/retrieval/embedders/onnx-encoder.ts";
import type { Embedder } from "../../../services/retrieval/types.ts";
import { findModel, tinyBertGraph, tinyBertReferenceEmbedding, tinyBertWeights, type TinyBertWeights } from "./tiny-bert.ts";

describe("BERT-family ONNX encoder folder", () => {
  let dir: string;
  let weights: TinyBertWeights;
  let encoder: Embedder;
  const tokenizerDir = findModel("minilm-tokenizer");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tiny-bert-"));
    const tokenizer = await loadTokenizer(tokenizerDir);
    weights = tinyBertWeights(tokenizer.vocabSize);
    await writeOnnx(tinyBertGraph(weights), dir, "model");
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tokenizerDir, f), join(dir, f));
    encoder = await createOnnxEncoder(dir, { batchSize: 2, maxTokens: 32 });
  });
  afterAll(async () => {
    await encoder?.close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it("mean-pools and normalises like the plain-TypeScript reference, in padded batches", async () => {
    const texts = ["Hello world!", "Retrieval-augmented generation over tenant documents.", "a", "Unbelievably tokenized words"];
    const tokenizer = await loadTokenizer(tokenizerDir);
    const vectors = await encoder.embed(texts);
    expect(encoder.dimension).toBe(weights.hidden);
    texts.forEach((text, i) => {
      const reference = tinyBertReferenceEmbedding(weights, tokenizer.encode(text));
      expect(vectors[i]).toHaveLength(weights.hidden);
      vectors[i].forEach((x, d) => expect(x).toBeCloseTo(reference[d], 4));
    });
  });

  it("clips long inputs to maxTokens, keeping the final [SEP]", async () => {
    const tokenizer = await loadTokenizer(tokenizerDir);
    const long = Array.from({ length: 60 }, (_, i) => `w${i}`).join(" ");
    const ids = tokenizer.encode(long);
    const clipped = [...ids.slice(0, 31), ids[ids.length - 1]];
    const [vector] = await encoder.embed([long]);
    const reference = tinyBertReferenceEmbedding(weights, clipped);
    vector.forEach((x, d) => expect(x).toBeCloseTo(reference[d], 4));
  });

  it("refuses a folder without model.onnx", async () => {
    await expect(createOnnxEncoder(tokenizerDir)).rejects.toThrow(/no model.onnx/);
  });
});
