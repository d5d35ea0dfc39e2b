import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  floatToBf16,
  floatToHalf,
  halfToFloat,
  HeaderLimitError,
  openWeights,
  parseSafetensorsBytes,
  writeSafetensors,
} from "../../../services/model/safetensors.ts";
import { findSharedModel } from "../../helpers/model-fixtures.ts";

function randomValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "sy-st-"));
}

/** A hand-built header, so corruption tests control every byte. */
function rawFile(header: string, dataBytes = 0, declaredLength?: number): Uint8Array {
  const headerBytes = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + headerBytes.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  return out;
}

describe("safetensors", () => {
  it("reads the real stories260k weights", async () => {
    const dir = findSharedModel("stories260k");
    const store = await openWeights(dir);
    try {
      expect(store.info("model.embed_tokens.weight")).toEqual({ dtype: "F32", shape: [512, 64] });
      expect(store.has("lm_head.weight")).toBe(false);
      const norm = store.getF32("model.norm.weight");
      expect(norm.length).toBe(64);
      // Independent check: decode the same bytes straight from the file with a DataView.
      const file = readFileSync(join(dir, "model.safetensors"));
      const headerLength = Number(file.readBigUInt64LE(0));
      const header = JSON.parse(file.subarray(8, 8 + headerLength).toString("utf8"));
      const [begin] = header["model.norm.weight"].data_offsets;
      const start = 8 + headerLength + begin;
      for (let i = 0; i < 64; i++) expect(norm[i]).toBe(file.readFloatLE(start + 4 * i));
      expect(await store.contentHash()).toBe(createHash("sha256").update(file).digest("hex"));
      expect(() => store.getF32("model.layers.9.mlp.up_proj.weight")).toThrow(/"model.layers.9.mlp.up_proj.weight" not found/);
    } finally {
      store.close();
    }
  });

  it("round-trips F32, F16 and BF16 tensors through write and parse", () => {
    const values = randomValues(24, 7);
    const bytes = writeSafetensors(
      {
        a: { dtype: "F32", shape: [2, 3, 4], data: values },
        b: { dtype: "F16", shape: [24], data: values },
        c: { dtype: "BF16", shape: [4, 6], data: values },
        empty: { dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
      },
      { format: "pt" },
    );
    expect((bytes.byteLength - 8) % 4).toBe(0);
    const store = parseSafetensorsBytes(bytes);
    expect(store.names().sort()).toEqual(["a", "b", "c", "empty"]);
    expect(store.getF32("a")).toEqual(values);
    expect(store.info("b")).toEqual({ dtype: "F16", shape: [24] });
    const half = store.getF32("b");
    const bf = store.getF32("c");
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(half[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -11 + 1e-7);
      expect(Math.abs(bf[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -8);
    }
    expect(store.getF32("empty").length).toBe(0);
  });

  it("converts half and bfloat16 bit patterns exactly", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    for (const v of [1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, 0.333251953125]) expect(halfToFloat(floatToHalf(v))).toBe(v);
    expect(floatToBf16(1)).toBe(0x3f80);
    expect(floatToBf16(-2.5)).toBe(0xc020);
    const bits = new Uint16Array([0x3f80, 0xc020, 0x4049]);
    const store = parseSafetensorsBytes(writeSafetensors({ t: { dtype: "BF16", shape: [3], data: bits } }));
    expect(Array.from(store.getF32("t"))).toEqual([1, -2.5, 3.140625]);
  });

  it("opens a sharded model through its index", async () => {
    const dir = tempDir();
    const a = randomValues(6, 1);
    const b = randomValues(8, 2);
    writeFileSync(join(dir, "model-00001-of-00002.safetensors"), writeSafetensors({ a: { dtype: "F32", shape: [2, 3], data: a } }));
    writeFileSync(join(dir, "model-00002-of-00002.safetensors"), writeSafetensors({ b: { dtype: "F16", shape: [8], data: b } }));
    const index = { metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } };
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    const store = await openWeights(dir);
    expect(store.names().sort()).toEqual(["a", "b"]);
    expect(store.getF32("a")).toEqual(a);
    expect(store.info("b").dtype).toBe("F16");
    expect(await store.contentHash()).toMatch(/^[0-9a-f]{64}$/);
    store.close();
    expect(() => store.getF32("a")).toThrow(/closed/);

    index.weight_map.b = "model-00001-of-00002.safetensors";
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    await expect(openWeights(dir)).rejects.toThrow(/tensor "b" listed in model.safetensors.index.json is missing/);
  });

  it("rejects corrupt headers with the file and the problem", async () => {
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(4), /too short/],
      [rawFile("{}", 0, 1e9), /length 1000000000 exceeds the file/],
      [rawFile("{not json"), /invalid JSON/],
      [rawFile('{"x":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', 1), /"x" has unsupported dtype "I8"/],
      [rawFile('{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8), /"x" has data_offsets \[0, 16\] outside the data/],
      [rawFile('{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8), /"x" spans 8 bytes but shape \[3\] F32 needs 12/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => parseSafetensorsBytes(bytes, "bad.safetensors")).toThrow(message);
      const dir = tempDir();
      writeFileSync(join(dir, "model.safetensors"), bytes);
      await expect(openWeights(dir)).rejects.toThrow(new RegExp(`model\\.safetensors: .*${message.source}`));
    }
  });

  it("checks an untrusted header's declared length before decoding it, and counts its tensors while reading", () => {
    const limits = { maxHeaderBytes: 1024, maxTensors: 2, reason: "two at most" };
    // Not JSON at all: refused by its length alone, so the bytes were never decoded.
    const huge = rawFile("x".repeat(4096));
    expect(() => parseSafetensorsBytes(huge, "a.safetensors", limits)).toThrow(HeaderLimitError);
    expect(() => parseSafetensorsBytes(huge, "a.safetensors", limits)).toThrow("a.safetensors: the header is 4096 bytes, over the limit of 1024 (two at most)");
    const entry = (name: string) => `"${name}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`;
    const three = rawFile(`{${["a", "b", "c"].map(entry).join(",")}}`);
    expect(() => parseSafetensorsBytes(three, "a.safetensors", limits)).toThrow("a.safetensors: the header lists more than 2 tensors (two at most)");
    const two = rawFile(`{"__metadata__":{"format":"pt"},${["a", "b"].map(entry).join(",")}}`);
    expect(parseSafetensorsBytes(two, "a.safetensors", limits).names()).toEqual(["a", "b"]);
    expect(parseSafetensorsBytes(three).names()).toEqual(["a", "b", "c"]); // trusted files keep the old bounds
  });

  it("says when a folder has no weights", async () => {
    await expect(openWeights(tempDir())).rejects.toThrow(/no model.safetensors or model.safetensors.index.json/);
  });
});
