import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine, weightMemoryFromEnv } from "../../../services/inference/engine.ts";
import { collect, params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";

const KNOWN_ANSWER = "Once upon a time, there was a little girl named Lily.";

describe("engine weight memory", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("mapped and packed engines share one compilation of the weights and give the same greedy tokens", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-memory-"));
    dirs.push(cacheDir);
    const modelDir = findModel("stories260k");
    const mapped = await createEngine({ modelDir, cacheDir, weightMemory: "mapped" });
    const packed = await createEngine({ modelDir, cacheDir, weightMemory: "packed", verifyWeights: false });
    try {
      const request = { promptTokens: [1], params: params({ maxTokens: 30, logprobs: 0 }) };
      const [a, b] = [await collect(mapped.generate(request)), await collect(packed.generate(request))];
      expect(a.text.startsWith(KNOWN_ANSWER)).toBe(true);
      expect(b.tokens).toEqual(a.tokens);
      expect(mapped.stats().sessionsCreated).toBe(2); // prefill and decode-only over the mapped file
      expect(packed.stats().sessionsCreated).toBe(1); // one packed copy: the general graph decodes too
      expect(packed.stats().weightsCheck).toBe("off");

      // One model folder for every variant of both engines. Its F32 safetensors are served in place, so there is
      // no weight file (stories260k's tensors are all small enough to be inline; tests/services/model/compile-in-place.test.ts).
      const folders = await readdir(cacheDir);
      expect(folders).toHaveLength(1);
      const files = await readdir(join(cacheDir, folders[0]!));
      expect(files.filter((f) => f.endsWith(".bin"))).toEqual([]);
      expect(files.filter((f) => f.endsWith(".onnx"))).toHaveLength(4);
      // The background check hashed the source once and recorded it in the folder.
      await expect.poll(() => mapped.stats().weightsCheck).toBe("recorded");
      expect(await readdir(join(cacheDir, folders[0]!))).toContain("source.json");
    } finally {
      await Promise.all([mapped.close(), packed.close()]);
    }
  });

  it("closing stops the background check first: nothing is written into the compile cache after close", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-close-"));
    const engine = await createEngine({ modelDir: findModel("stories260k"), cacheDir });
    await engine.close(); // at once, while the check may still be hashing
    expect(["recorded", "off"]).toContain(engine.stats().weightsCheck);
    await rm(cacheDir, { recursive: true }); // would race (ENOTEMPTY) with a check still writing source.json
  });

  it("reads the mode from SWITCHYARD_WEIGHT_MEMORY (default by weight format) and refuses others", () => {
    expect(weightMemoryFromEnv({})).toBe("mapped");
    expect(weightMemoryFromEnv({ SWITCHYARD_WEIGHT_MEMORY: "packed" })).toBe("packed");
    // Quantized operators compute from their prepacked layout only, so quantized weights default to packed.
    expect(weightMemoryFromEnv({}, "int8")).toBe("packed");
    expect(weightMemoryFromEnv({}, "int4")).toBe("packed");
    expect(weightMemoryFromEnv({ SWITCHYARD_WEIGHT_MEMORY: "mapped" }, "int4")).toBe("mapped");
    expect(() => weightMemoryFromEnv({ SWITCHYARD_WEIGHT_MEMORY: "int8" })).toThrow(/mapped or packed/);
  });
});
