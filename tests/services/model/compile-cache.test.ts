import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compileDecoder, compileKey } from "../../../services/model/compile-cache.ts";
import { randomWeights, tinyConfig } from "../../helpers/tiny-model.ts";

describe("compiled-graph cache", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("keys by weights, config and graph options", () => {
    const config = tinyConfig();
    const base = compileKey(config, "hash-a");
    expect(compileKey(config, "hash-a")).toBe(base);
    expect(compileKey(config, "hash-b")).not.toBe(base);
    expect(compileKey({ ...config, ropeTheta: 500000 }, "hash-a")).not.toBe(base);
    expect(compileKey(config, "hash-a", { lora: true })).not.toBe(base);
    expect(compileKey(config, "hash-a", { decodeOnly: true })).not.toBe(compileKey(config, "hash-a", { kvOutput: "new" }));
  });

  it("builds once, then serves the files from disk without rebuilding", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sy-compile-"));
    dirs.push(cacheDir);
    const config = tinyConfig();
    const weights = Object.assign(randomWeights(config, 5), { contentHash: "tiny-5" });
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
});
