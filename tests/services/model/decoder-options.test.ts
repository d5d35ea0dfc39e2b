import { describe, expect, it } from "vitest";
import { compileKey } from "../../../services/model/compile-cache.ts";
import { normalizeDecoderOptions } from "../../../services/model/decoder.ts";
import { tinyConfig } from "../../helpers/tiny-model.ts";

describe("normalizeDecoderOptions", () => {
  it("fills defaults, folds the deprecated fusedNorm into fused and forces new keys for decode-only graphs", () => {
    expect(normalizeDecoderOptions()).toEqual({ lora: false, fused: false, kvOutput: "present", decodeOnly: false, virtualTokens: false, weights: "f32", int8Weights: "uint8" });
    expect(normalizeDecoderOptions({ fusedNorm: true })).toEqual({ lora: false, fused: true, kvOutput: "present", decodeOnly: false, virtualTokens: false, weights: "f32", int8Weights: "uint8" });
    expect(normalizeDecoderOptions({ fused: false, fusedNorm: true }).fused).toBe(false);
    expect(normalizeDecoderOptions({ virtualTokens: true }).virtualTokens).toBe(true);
    expect(normalizeDecoderOptions({ virtualTokens: true, decodeOnly: true }).virtualTokens).toBe(false); // virtual tokens are prefill only
    expect(normalizeDecoderOptions({ decodeOnly: true, kvOutput: "present" })).toEqual({ lora: false, fused: false, kvOutput: "new", decodeOnly: true, virtualTokens: false, weights: "f32", int8Weights: "uint8" });
    expect(normalizeDecoderOptions({ weights: "int8", int8Weights: "int8" }).int8Weights).toBe("int8");
    expect(normalizeDecoderOptions({ weights: "int4", int8Weights: "int8" }).int8Weights).toBe("uint8"); // only int8 weights are stored so
  });

  it("gives equivalent options one compile key", () => {
    const config = tinyConfig();
    expect(compileKey(config, "h", { fusedNorm: true })).toBe(compileKey(config, "h", { fused: true }));
    expect(compileKey(config, "h", { decodeOnly: true, virtualTokens: false, weights: "f32" })).toBe(compileKey(config, "h", { decodeOnly: true, kvOutput: "new" }));
    expect(compileKey(config, "h", {})).toBe(compileKey(config, "h", { lora: false, fused: false, kvOutput: "present", decodeOnly: false, virtualTokens: false, weights: "f32" }));
    // Each weights format is its own cache entry.
    expect(new Set(["f32", "int8", "int4"].map((weights) => compileKey(config, "h", { weights: weights as "f32" }))).size).toBe(3);
  });
});
