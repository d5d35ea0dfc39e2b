import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, TensorProto_DataLocation } from "onnx-buf";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { checkSourceWeights, compileDecoder, compileDecoders, compileKey, modelKey } from "../../../services/model/compile-cache.ts";
import { openWeights, writeSafetensors, type TensorToWrite } from "../../../services/model/safetensors.ts";
import { WEIGHT_FILE, WeightFileWriter, readWeightManifest, withWeightFileLock } from "../../../services/model/weight-file.ts";
import { engineSessionOptions, engineVariants } from "../../../services/inference/engine.ts";
import { hfShape, randomArray, randomWeights, tinyConfig } from "../../helpers/tiny-model.ts";

describe("compiled-graph cache", () => {
  const dirs: string[] = [];
  const tempDir = async (prefix: string) => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("keys by weights, config and graph options; graph-only options share the model folder", () => {
    const config = tinyConfig();
    const base = compileKey(config, "hash-a");
    expect(compileKey(config, "hash-a")).toBe(base);
    expect(compileKey(config, "hash-b")).not.toBe(base);
    expect(compileKey({ ...config, ropeTheta: 500000 }, "hash-a")).not.toBe(base);
    expect(compileKey(config, "hash-a", { lora: true })).not.toBe(base);
    expect(compileKey(config, "hash-a", { decodeOnly: true })).not.toBe(compileKey(config, "hash-a", { kvOutput: "new" }));
    expect(modelKey(config, "hash-a", { lora: true, decodeOnly: true })).toBe(modelKey(config, "hash-a"));
    expect(modelKey(config, "hash-b")).not.toBe(modelKey(config, "hash-a"));
  });

  it("builds once, then serves the files from disk without rebuilding", async () => {
    const cacheDir = await tempDir("sy-compile-");
    const config = tinyConfig();
    const weights = Object.assign(randomWeights(config, 5), { identity: "tiny-5" });
    const first = await compileDecoder({ config, weights, cacheDir });
    const built = (await stat(first.modelPath)).mtimeMs;
    let reads = 0;
    const counting = { ...weights, has: (n: string) => weights.has(n), getF32: (n: string) => (reads++, weights.getF32(n)) };
    const second = await compileDecoder({ config, weights: counting, cacheDir });
    expect(first.cached).toBe(false);
    expect(second).toEqual({ ...first, cached: true });
    expect(reads).toBe(0);
    expect((await stat(second.modelPath)).mtimeMs).toBe(built);
  });

  it("keeps one copy of the weights for all four engine variants, which their sessions load", async () => {
    const cacheDir = await tempDir("sy-compile-");
    const config = tinyConfig();
    const weights = Object.assign(randomWeights(config, 6), { identity: "tiny-6" });
    const compiled = await compileDecoders({ config, weights, cacheDir }, engineVariants());
    const files = await readdir(compiled.dir);
    expect(files.filter((f) => f.endsWith(".bin"))).toEqual([WEIGHT_FILE]);
    expect(files.filter((f) => f.endsWith(".onnx")).sort()).toEqual(Object.values(compiled.graphs).map((g) => g.modelPath.split("/").at(-1)).sort());

    // Every large initializer of every variant is external data in the one file; the file holds each once.
    const manifest = (await readWeightManifest(compiled.dir))!;
    const used = new Set<number>();
    let oneVariantBytes = 0;
    for (const [variant, graph] of Object.entries(compiled.graphs)) {
      const model = fromBinary(ModelProtoSchema, await readFile(graph.modelPath));
      let bytes = 0;
      for (const init of model.graph!.initializer) {
        if (init.dataLocation !== TensorProto_DataLocation.EXTERNAL) {
          expect(init.rawData.byteLength, `${variant} ${init.name} inline`).toBeLessThan(1024);
          continue;
        }
        const where = Object.fromEntries(init.externalData.map((e) => [e.key, e.value]));
        expect(where.location).toBe(WEIGHT_FILE);
        expect(Number(where.offset) % 4096).toBe(0);
        used.add(Number(where.offset));
        bytes += Number(where.length);
      }
      if (variant === "prefill") oneVariantBytes = bytes;
    }
    expect(used.size).toBe(manifest.entries.length);
    const dataBytes = manifest.entries.reduce((n, e) => n + e.length, 0);
    expect(dataBytes).toBeLessThan(oneVariantBytes * 1.1); // the LoRA variants add only their small constants
    expect((await stat(join(compiled.dir, WEIGHT_FILE))).size).toBe(manifest.size);

    // The sessions load the shared file with the engine's options (prepacking off: no private copies).
    const options = engineSessionOptions(1);
    expect(options.extra).toEqual({ session: { disable_prepacking: "1" } });
    for (const graph of Object.values(compiled.graphs)) await (await ort.InferenceSession.create(graph.modelPath, options)).release();

    // A later call finds everything compiled and appends nothing.
    const again = await compileDecoders({ config, weights, cacheDir }, engineVariants());
    expect(again.appendedTensors).toBe(0);
    expect(Object.values(again.graphs).every((g) => g.cached)).toBe(true);
  });

  it("a variant compiled later reuses the weights already in the file", async () => {
    const cacheDir = await tempDir("sy-compile-");
    const config = tinyConfig();
    const weights = Object.assign(randomWeights(config, 7), { identity: "tiny-7" });
    const { prefill, decode } = engineVariants();
    const first = await compileDecoders({ config, weights, cacheDir }, { prefill, decode });
    const before = (await readWeightManifest(first.dir))!;
    const later = await compileDecoders({ config, weights, cacheDir }, { prefillLora: engineVariants().prefillLora });
    const after = (await readWeightManifest(later.dir))!;
    expect(later.dir).toBe(first.dir);
    expect(after.entries.slice(0, before.entries.length)).toEqual(before.entries); // append-only
    expect(after.entries.length - before.entries.length).toBe(later.appendedTensors);
    expect(after.entries.length - before.entries.length).toBeLessThanOrEqual(config.numLayers); // LoRA constants at most
  });

  it("the weight file reuses a tensor only for equal bytes, and aligns each to a page", async () => {
    const dir = await tempDir("sy-weightfile-");
    const a = new Uint8Array(randomArray(700, 1, 1).buffer);
    const b = new Uint8Array(randomArray(700, 2, 1).buffer);
    const writer = await WeightFileWriter.open(dir);
    const pa = writer.place("t", a);
    expect(writer.place("t", a.slice())).toEqual(pa);
    const pb = writer.place("t", b); // same name, other bytes: its own entry
    expect(pb.offset).not.toBe(pa.offset);
    expect(pb.offset % 4096).toBe(0);
    await writer.commit();
    const reopened = await WeightFileWriter.open(dir);
    expect(reopened.place("t", b.slice())).toEqual(pb); // compared against the bytes on disk
    expect(reopened.appended).toBe(0);
    reopened.place("u", a);
    expect(reopened.appended).toBe(1);
    reopened.closeReader();

    // A writer that died holding the lock does not block the next one.
    await writeFile(join(dir, "weights.lock"), String(spawnSync("true").pid));
    expect(await withWeightFileLock(dir, async () => "took over")).toBe("took over");
    expect(await readdir(dir)).not.toContain("weights.lock");

    // A restarted container is pid 1 again: a lock under our own pid written before we started is its predecessor's.
    const lock = join(dir, "weights.lock");
    await writeFile(lock, String(process.pid));
    const beforeStart = new Date(Date.now() - process.uptime() * 1000 - 60_000);
    await utimes(lock, beforeStart, beforeStart);
    expect(await withWeightFileLock(dir, async () => "took over")).toBe("took over");

    // One written by this process is live: the next writer waits until it is released.
    await writeFile(lock, String(process.pid));
    const order: string[] = [];
    const waiting = withWeightFileLock(dir, async () => order.push("second"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    order.push("first released");
    await rm(lock);
    await waiting;
    expect(order).toEqual(["first released", "second"]);
  });

  it("keys by an identity that changes with the file, and checks the content off the start path", async () => {
    const modelDir = await tempDir("sy-identity-");
    const cacheDir = await tempDir("sy-compile-");
    const config = tinyConfig();
    const tensors = (seed: number) => {
      const weights = randomWeights(config, seed);
      return Object.fromEntries(weights.names().map((n) => [n, { dtype: "F32", shape: hfShape(config, n), data: weights.getF32(n) } satisfies TensorToWrite]));
    };
    const file = join(modelDir, "model.safetensors");
    await writeFile(file, writeSafetensors(tensors(8)));
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000); // whole seconds: restorable exactly
    await utimes(file, mtime, mtime);
    const open = async () => {
      const store = await openWeights(modelDir);
      // The start path must not hash the bytes: a store that cannot still compiles.
      return Object.assign(store, { contentHash: () => Promise.reject(new Error("hashed on the start path")) });
    };
    const first = await open();
    const compiled = await compileDecoder({ config, weights: first, cacheDir });
    first.close();
    const unchanged = await open();
    expect(unchanged.identity).toBe(first.identity);
    expect((await compileDecoder({ config, weights: unchanged, cacheDir })).cached).toBe(true);
    unchanged.close();
    const source = await openWeights(modelDir);
    expect(await checkSourceWeights(join(cacheDir, compiled.key.split("/")[0]!), () => source.contentHash())).toBe("recorded");
    expect(await checkSourceWeights(join(cacheDir, compiled.key.split("/")[0]!), () => source.contentHash())).toBe("unchanged");
    source.close();

    // Rewritten: a new mtime, so a new identity and a new compilation.
    await writeFile(file, writeSafetensors(tensors(9)));
    const changed = await open();
    expect(changed.identity).not.toBe(first.identity);
    expect((await compileDecoder({ config, weights: changed, cacheDir })).cached).toBe(false);
    changed.close();

    // Rewritten with the old mtime put back: the identity cannot tell, the content check can.
    await utimes(file, mtime, mtime);
    const disguised = await openWeights(modelDir);
    expect(disguised.identity).toBe(first.identity);
    const folder = join(cacheDir, compiled.key.split("/")[0]!);
    expect(await checkSourceWeights(folder, () => disguised.contentHash())).toBe("changed");
    disguised.close();
    await expect(stat(folder)).rejects.toThrow(/ENOENT/); // the next start compiles afresh
  });
});
