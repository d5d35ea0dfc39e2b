/**
 * Serving F32 safetensors in place (services/model/compile-cache.ts `servedInPlace`): the engine's
 * graphs reference the large source tensors where they lie, through a Hugging Face cache's links,
 * write no weight file, and compute what the plain reference forward computes.
 */
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, TensorProto_DataLocation } from "onnx-buf";
import { afterAll, describe, expect, it } from "vitest";
import { compileDecoders } from "../../../services/model/compile-cache.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { openWeights, writeSafetensors, type TensorToWrite } from "../../../services/model/safetensors.ts";
import { IN_PLACE_MIN_BYTES } from "../../../services/model/llama/weights.ts";
import { DecoderRunner } from "../../../services/inference/decoder-runner.ts";
import { compiledSession, engineSessionOptions, engineVariants } from "../../../services/inference/engine.ts";
import { BatchCache } from "../../../services/inference/kv-cache.ts";
import { expectClose, row } from "../../helpers/compare.ts";
import { hfShape, randomWeights, tinyConfig } from "../../helpers/tiny-model.ts";

const TOLERANCE = 1e-4;

describe("compiling F32 safetensors in place", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  // Every projection group and the embedding reach IN_PLACE_MIN_BYTES (1 MiB): hidden 512, 512 tokens.
  const config = tinyConfig({ hiddenSize: 512, intermediateSize: 512, numHeads: 8, numKvHeads: 2, headDim: 64, vocabSize: 512 });
  const memory = randomWeights(config, 31);

  /**
   * A Hugging Face hub cache: the snapshot's files are links to blobs elsewhere; with `shards`, the
   * tensors are split over that many files listed in model.safetensors.index.json.
   */
  async function hubLayout(shards = 1): Promise<{ snapshot: string; blobs: string }> {
    const root = await realpath(await mkdtemp(join(tmpdir(), "sy-in-place-")));
    dirs.push(root);
    const [blobs, snapshot] = [join(root, "blobs"), join(root, "snapshots", "rev")];
    await Promise.all([mkdir(blobs, { recursive: true }), mkdir(snapshot, { recursive: true })]);
    const names = memory.names();
    const weightMap: Record<string, string> = {};
    for (let shard = 0; shard < shards; shard++) {
      const mine = names.filter((_, i) => i % shards === shard);
      const file = shards === 1 ? "model.safetensors" : `model-0000${shard + 1}-of-0000${shards}.safetensors`;
      const tensors = Object.fromEntries(mine.map((n) => [n, { dtype: "F32", shape: hfShape(config, n), data: memory.getF32(n) } satisfies TensorToWrite]));
      await writeFile(join(blobs, `blob${shard}`), writeSafetensors(tensors));
      await symlink(`../../blobs/blob${shard}`, join(snapshot, file));
      for (const n of mine) weightMap[n] = file;
    }
    if (shards > 1) await writeFile(join(snapshot, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    return { snapshot, blobs };
  }

  it.each([1, 2])("references the source tensors where they lie (%i file(s)), writes no weight file, and matches the reference forward", async (shards) => {
    const { snapshot, blobs } = await hubLayout(shards);
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-in-place-cache-"));
    dirs.push(cacheDir);
    const store = await openWeights(snapshot);
    const compiled = await compileDecoders({ config, weights: store, cacheDir }, engineVariants());
    expect(compiled.inPlace).toBe(true);
    expect(compiled.dataFolder).toBe(blobs);
    expect((await readdir(compiled.dir)).filter((f) => !f.endsWith(".onnx"))).toEqual([]); // no weights.bin

    // Each large tensor is the source's own bytes (offset and length of its safetensors entry); what is inline is small.
    const located = new Map(store.names().map((n) => [JSON.stringify(store.locate!(n)), n]));
    for (const [variant, graph] of Object.entries(compiled.graphs)) {
      const model = fromBinary(ModelProtoSchema, await readFile(graph.modelPath));
      let referenced = 0;
      for (const init of model.graph!.initializer) {
        if (init.dataLocation !== TensorProto_DataLocation.EXTERNAL) {
          expect(init.rawData.byteLength, `${variant} ${init.name} inline`).toBeLessThan(IN_PLACE_MIN_BYTES);
          continue;
        }
        const where = Object.fromEntries(init.externalData.map((e) => [e.key, e.value]));
        expect(where.location).toMatch(/^blob\d$/);
        const file = { path: join(blobs, where.location!), offset: Number(where.offset), byteLength: Number(where.length) };
        expect(located.has(JSON.stringify(file)), `${variant} ${init.name} is a source tensor`).toBe(true);
        referenced++;
      }
      // q/k/v, o, gate/up, down of each layer, the embedding and the head.
      expect(referenced, variant).toBe(config.numLayers * 7 + 2);
    }

    // The engine's sessions find the blobs through dataFolder; prefill and decode give the reference's logits.
    const options = engineSessionOptions(1);
    const sessions = await Promise.all(Object.values(compiled.graphs).map((g) => compiledSession(g, options)));
    const runner = new DecoderRunner(await compiledSession(compiled.graphs.prefill, options), config, await compiledSession(compiled.graphs.decode, options));
    const tokens = [1, 7, 300, 42, 511, 9];
    const cache = BatchCache.empty(config, 1);
    const prefill = await runner.step({ cache, tokens: [tokens.slice(0, 4)], startPositions: [0], allLogits: true });
    const ours = Array.from({ length: 4 }, (_, t) => row(prefill.logits, t, config.vocabSize, 4).slice());
    for (let t = 4; t < tokens.length; t++) ours.push(row((await runner.step({ cache, tokens: [[tokens[t]!]], startPositions: [t] })).logits, 0, config.vocabSize, 1).slice());
    const reference = new ReferenceDecoder(config, (n) => memory.getF32(n));
    reference.forward(reference.newCache(), tokens).forEach((logits, t) => expectClose(ours[t]!, logits, TOLERANCE, `position ${t}`));
    await Promise.all(sessions.map((s) => s.release()));

    // A warm start reads no tensor.
    let reads = 0;
    const counting = Object.assign(Object.create(store) as typeof store, { getF32: (n: string) => (reads++, store.getF32(n)) });
    const again = await compileDecoders({ config, weights: counting, cacheDir }, engineVariants());
    expect(Object.values(again.graphs).every((g) => g.cached)).toBe(true);
    expect(reads).toBe(0);
    store.close();
  });

  it("copies what cannot be served in place: quantized formats and F16 sources get a weight file", async () => {
    const { snapshot } = await hubLayout();
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-in-place-cache-"));
    dirs.push(cacheDir);
    const store = await openWeights(snapshot);
    const int8 = await compileDecoders({ config, weights: store, cacheDir }, engineVariants("int8"));
    expect(int8.inPlace).toBe(false);
    expect(await readdir(int8.dir)).toContain("weights.bin");
    store.close();

    const halfDir = await mkdtemp(join(tmpdir(), "sy-in-place-f16-"));
    dirs.push(halfDir);
    const tiny = tinyConfig();
    const tinyWeights = randomWeights(tiny, 3);
    const tensors = Object.fromEntries(tinyWeights.names().map((n) => [n, { dtype: "F16", shape: hfShape(tiny, n), data: tinyWeights.getF32(n) } satisfies TensorToWrite]));
    await writeFile(join(halfDir, "model.safetensors"), writeSafetensors(tensors));
    const half = await openWeights(halfDir);
    expect(half.locate).toBeUndefined();
    half.close();
  });
});
