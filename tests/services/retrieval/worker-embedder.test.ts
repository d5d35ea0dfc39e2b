import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { loadTokenizer } from "../../../services/model/tokenizer.ts";
import { createOnnxEncoder } from "../../../services/retrieval/embedders/onnx-encoder.ts";
import { createUseLiteEmbedder } from "../../../services/retrieval/embedders/use-lite.ts";
import { createWorkerEmbedder } from "../../../services/retrieval/embedders/worker-pool.ts";
import type { Embedder } from "../../../services/retrieval/types.ts";
import { until } from "../../helpers/until.ts";
import { findModel, tinyBertGraph, tinyBertWeights } from "./tiny-bert.ts";

const TEXTS = ["How do I reset my password?", "Cats sleep most of the day.", "x", Array.from({ length: 300 }, (_, i) => `w${i}`).join(" ")];

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);

async function expectSameEmbedder(inThread: Embedder, offThread: Embedder) {
  expect({ id: offThread.id, dimension: offThread.dimension, maxTokens: offThread.maxTokens }).toEqual({ id: inThread.id, dimension: inThread.dimension, maxTokens: inThread.maxTokens });
  for (const text of TEXTS) expect(offThread.countTokens!(text)).toBe(inThread.countTokens!(text));
  const [want, got] = [await inThread.embed(TEXTS), await offThread.embed(TEXTS)];
  expect(got).toHaveLength(TEXTS.length);
  got.forEach((v, i) => {
    expect(v).toBeInstanceOf(Float32Array);
    expect(cosine(v, want[i])).toBeGreaterThan(0.99999);
  });
  expect(await offThread.embed([])).toEqual([]);
}

describe("embedding on worker threads", () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tiny-bert-worker-"));
    const tokenizerDir = findModel("minilm-tokenizer");
    const tokenizer = await loadTokenizer(tokenizerDir);
    await writeOnnx(tinyBertGraph(tinyBertWeights(tokenizer.vocabSize)), dir, "model");
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tokenizerDir, f), join(dir, f));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("USE Lite on workers gives the in-process vectors, token counts and identity; a large call starts a second thread and is split over both, in order", async () => {
    const [inThread, offThread] = [await createUseLiteEmbedder({ int8: true }), await createWorkerEmbedder({ kind: "use-lite", options: { int8: true } }, 2)];
    try {
      await expectSameEmbedder(inThread, offThread);
      expect(offThread.readyThreads()).toBe(1); // small calls never start the spare
      const many = Array.from({ length: 40 }, (_, i) => `${TEXTS[i % TEXTS.length].slice(0, 200)} (${i})`);
      const want = await inThread.embed(many);
      const before = await offThread.embed(many);
      expect(await until(async () => offThread.readyThreads(), (n) => n === 2)).toBe(2);
      const split = await offThread.embed(many);
      for (const got of [before, split]) {
        expect(got).toHaveLength(many.length);
        got.forEach((v, i) => expect(cosine(v, want[i]), many[i]).toBeGreaterThan(0.99999));
      }
    } finally {
      await inThread.close?.();
      await offThread.close?.();
    }
  });

  it("an ONNX encoder folder on two workers gives the in-process vectors, calls in parallel included", async () => {
    const options = { batchSize: 2, maxTokens: 32 };
    const [inThread, offThread] = [await createOnnxEncoder(dir, options), await createWorkerEmbedder({ kind: "onnx", dir, options }, 2)];
    try {
      await expectSameEmbedder(inThread, offThread);
      const parallel = await Promise.all(TEXTS.map((t) => offThread.embed([t])));
      const want = await inThread.embed(TEXTS);
      parallel.forEach(([v], i) => expect(cosine(v, want[i])).toBeGreaterThan(0.99999));
    } finally {
      await inThread.close?.();
      await offThread.close?.();
    }
    await expect(offThread.embed(["after close"])).rejects.toThrow(/closed/);
  });

  it("close lets a call in flight and spares still loading finish first, so the process lives on", async () => {
    // Without that, terminating a thread that onnxruntime works for aborts the process (exit 134).
    const child = join(import.meta.dirname, "embed-close-child.ts");
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", child]);
    expect(JSON.parse(stdout)).toEqual({ running: 8, loadingSpares: 64 });
  });

  it("reports a model the worker cannot load", async () => {
    const broken = mkdtempSync(join(tmpdir(), "no-model-"));
    try {
      copyFileSync(join(dir, "tokenizer.json"), join(broken, "tokenizer.json"));
      await expect(createWorkerEmbedder({ kind: "onnx", dir: broken, options: {} })).rejects.toThrow(/could not load its model: no model.onnx/);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });
});
