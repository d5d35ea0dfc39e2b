import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { buildDecoderGraph, type DecoderOptions } from "../../../services/model/decoder.ts";
import { writeOnnx } from "../../../services/model/graph/onnx.ts";
import { ReferenceDecoder, type ReferenceCache } from "../../../services/model/reference.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { argmax, expectClose, row } from "../../helpers/compare.ts";
import { randomWeights, TINY_VARIANTS } from "../../helpers/tiny-model.ts";

const config = TINY_VARIANTS["llama untied GQA, odd sizes"];
const weights = randomWeights(config, 21);
const reference = new ReferenceDecoder(config, (n) => weights.getF32(n));
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function session(options: DecoderOptions): Promise<ort.InferenceSession> {
  const dir = await mkdtemp(join(tmpdir(), "sy-kv-"));
  dirs.push(dir);
  return ort.InferenceSession.create((await writeOnnx(buildDecoderGraph(config, weights, options), dir)).modelPath);
}

interface Sequence {
  ref: ReferenceCache;
  next: number;
  position: number;
}

const prompt = (length: number, seed: number) => Array.from({ length }, (_, i) => 1 + ((i * 7 + seed * 13) % (config.vocabSize - 1)));

describe("batch cache joins and leaves in place", () => {
  it("keeps every sequence equal to the reference through joins, removals, widening and compaction", async () => {
    const runner = new DecoderRunner(await session({ fused: true, kvOutput: "new" }), config, await session({ fused: true, decodeOnly: true }));
    const batch = BatchCache.empty(config, 0, undefined, 1); // row capacity must grow too
    let rows: Sequence[] = [];

    const admit = async (tokens: number[]) => {
      const own = BatchCache.empty(config, 1);
      const out = await runner.step({ cache: own, tokens: [tokens], startPositions: [0] });
      const ref = reference.newCache();
      const want = reference.forward(ref, tokens).at(-1)!;
      expectClose(out.logits, want, 1e-4, "prefill alone");
      batch.join(own);
      rows.push({ ref, next: argmax(want), position: tokens.length });
    };
    const decode = async (steps: number) => {
      for (let s = 0; s < steps; s++) {
        const out = await runner.step({ cache: batch, tokens: rows.map((r) => [r.next]), startPositions: rows.map((r) => r.position) });
        rows.forEach((r, i) => {
          const [want] = reference.forward(r.ref, [r.next]);
          expectClose(row(out.logits, i, config.vocabSize, rows.length), want, 1e-4, `row ${i}`);
          r.next = argmax(want);
          r.position++;
        });
      }
    };
    const remove = (indices: number[]) => {
      const order = batch.removeRows(indices);
      rows = order.map((i) => rows[i]);
      expect(batch.rows).toBe(rows.length);
    };

    await admit(prompt(3, 1));
    await admit(prompt(5, 2));
    await decode(3);
    await admit(prompt(40, 3)); // longer than the batch: widens it, the others keep their columns
    expect(batch.width).toBe(40);
    await decode(3);
    await admit(prompt(2, 4));
    remove([2]); // the long one leaves: the others have >= 32 padding columns, compacted away
    expect(batch.width).toBeLessThan(32);
    await decode(3);
    remove([0, 1]);
    await admit(prompt(6, 5));
    await decode(4);
    expect(rows.map((r) => r.position)).toEqual(rows.map((r) => batch.length(rows.indexOf(r))));
  });
});
