import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { createUseLiteEmbedder, quantizePerColumn, useLiteModelDir } from "../../services/retrieval/embedders/use-lite.ts";
import type { Embedder } from "../../services/retrieval/types.ts";

const SENTENCES = [
  "How do I reset my password?",
  "I forgot my login credentials and need to change them.",
  "The quarterly invoice is attached; payment is due in thirty days.",
  "Cats sleep most of the day.",
  "x",
  "Ünïcödé, emojis 🚀 and    extra   spaces!",
  // Longer than the model's 128-token window: both sides must clip it the same way.
  Array.from({ length: 45 }, (_, i) => `word${i}`).join(" "),
];

/** The original TF.js graph model, run by @tensorflow/tfjs on its CPU backend: the reference. */
async function tfjsReference(tokenized: number[][]): Promise<number[][]> {
  const dir = useLiteModelDir();
  const modelJson = JSON.parse(readFileSync(`${dir}/model.json`, "utf8"));
  const group = modelJson.weightsManifest[0];
  const weights = Buffer.concat(group.paths.map((p: string) => readFileSync(`${dir}/${p}`)));
  await tf.setBackend("cpu");
  const model = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: group.weights,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      format: "graph-model",
    }),
  );
  const indices = tokenized.flatMap((ids, i) => ids.map((_, j) => [i, j]));
  const out = (await model.executeAsync({
    indices: tf.tensor2d(indices, [indices.length, 2], "int32"),
    values: tf.tensor1d(tokenized.flat(), "int32"),
  })) as tf.Tensor;
  return out.arraySync() as number[][];
}

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) (dot += a[i] * b[i]), (na += a[i] * a[i]), (nb += b[i] * b[i]);
  return dot / Math.sqrt(na * nb);
};

describe("USE Lite on onnxruntime", () => {
  let embedder: Embedder & { tokenize(text: string): number[] };
  beforeAll(async () => {
    embedder = await createUseLiteEmbedder({ batchSize: 3 });
  });

  it("matches the TF.js graph model (cosine >= 0.9999 per sentence; the int8 variant >= 0.995)", async () => {
    const reference = await tfjsReference(SENTENCES.map((s) => embedder.tokenize(s)));
    const ours = await embedder.embed(SENTENCES);
    SENTENCES.forEach((_, i) => {
      expect(ours[i]).toHaveLength(512);
      expect(cosine(ours[i], reference[i])).toBeGreaterThanOrEqual(0.9999);
    });
    const int8 = await createUseLiteEmbedder({ int8: true });
    try {
      const quantized = await int8.embed(SENTENCES);
      SENTENCES.forEach((_, i) => expect(cosine(quantized[i], reference[i])).toBeGreaterThanOrEqual(0.995));
    } finally {
      await int8.close?.();
    }
  });

  it("quantizes weights per column within half a step", () => {
    const rows = 5, cols = 3;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % cols)));
    const { values, scales } = quantizePerColumn(w, rows, cols);
    for (let i = 0; i < rows * cols; i++) {
      const j = i % cols;
      expect(Math.abs(values[i] * scales[j] - w[i])).toBeLessThanOrEqual(scales[j] / 2 + 1e-7);
      expect(Math.abs(values[i])).toBeLessThanOrEqual(127);
    }
  });

  it("gives unit vectors whose similarities make sense", async () => {
    const [a, b, c] = await embedder.embed([SENTENCES[0], SENTENCES[1], SENTENCES[3]]);
    expect(cosine(a, a)).toBeCloseTo(1, 5);
    expect(Math.hypot(...a)).toBeCloseTo(1, 5);
    expect(cosine(a, b)).toBeGreaterThan(0.5);
    expect(cosine(a, b)).toBeLessThan(0.66);
    expect(cosine(a, c)).toBeLessThan(0.3);
  });

  it("embeds a text the same alone and in a padded batch", async () => {
    const [alone] = await embedder.embed([SENTENCES[3]]);
    const batched = await embedder.embed([SENTENCES[6], SENTENCES[3], SENTENCES[4]]);
    expect(cosine(alone, batched[1])).toBeGreaterThan(0.99999);
  });
});
