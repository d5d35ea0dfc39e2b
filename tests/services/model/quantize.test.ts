import { describe, expect, it } from "vitest";
import { dequantize, dequantizedLookup, INT4_BLOCK, isQuantizedWeight, quantize } from "../../../services/model/quantize.ts";
import { randomArray } from "../../helpers/tiny-model.ts";

describe("quantize / dequantize", () => {
  it("int8: one block per output channel, |error| at most half a step (max|row| / 254)", () => {
    const rows = 5;
    const cols = 37;
    const w = randomArray(rows * cols, 3, 1);
    w[2 * cols + 4] = -3; // row 2's scale follows its own extreme, not the others'
    const q = quantize(w, rows, cols, "int8");
    expect(q).toMatchObject({ bits: 8, rows, cols, blockSize: cols });
    expect(q.packed.length).toBe(rows * cols);
    expect(q.scales.length).toBe(rows);
    const back = dequantize(q);
    for (let r = 0; r < rows; r++) {
      const max = Math.max(...w.subarray(r * cols, (r + 1) * cols).map(Math.abs));
      expect(q.scales[r]).toBeCloseTo(max / 127, 7);
      for (let c = 0; c < cols; c++) expect(Math.abs(back[r * cols + c] - w[r * cols + c])).toBeLessThanOrEqual(q.scales[r] / 2 + 1e-7);
    }
    expect(back[2 * cols + 4]).toBeCloseTo(-3, 6); // the extreme is exact
    expect(q.packed[2 * cols + 4]).toBe(1); // -127 + 128
  });

  it("int4: blocks of 32 by Q4_0's rule (largest magnitude exact, 16 levels), nibbles low first", () => {
    const rows = 3;
    const cols = 70; // 3 blocks, the last one padded
    const w = randomArray(rows * cols, 9, 0.5);
    const q = quantize(w, rows, cols, "int4");
    expect(q).toMatchObject({ bits: 4, blockSize: INT4_BLOCK });
    expect(q.packed.length).toBe(rows * 3 * 16);
    expect(q.scales.length).toBe(rows * 3);
    const back = dequantize(q);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < 3; b++) {
        const block = Array.from(w.subarray(r * cols + b * 32, r * cols + Math.min(cols, (b + 1) * 32)));
        const extreme = block.reduce((a, v) => (Math.abs(v) > Math.abs(a) ? v : a), 0);
        const d = q.scales[r * 3 + b];
        expect(d).toBeCloseTo(extreme / -8, 7);
        block.forEach((v, j) => {
          const got = back[r * cols + b * 32 + j];
          // Half a step, except past +7.5 steps on the far side of the extreme, clamped to 7 (Q4_0 does the same).
          const bound = v / d > 7.5 ? Math.abs(d) : Math.abs(d) / 2;
          expect(Math.abs(got - v)).toBeLessThanOrEqual(bound + 1e-7);
        });
        expect(back[r * cols + b * 32 + block.indexOf(extreme)]).toBeCloseTo(extreme, 6);
      }
    }
    // Padding holds the offset (8, standing for 0); value j of a block is nibble j % 2 of byte j / 2.
    expect(q.packed[2 * 16 + 15]).toBe(0x88);
    const stored = (q.packed[0] >> 4) & 0x0f; // element 1 of row 0, by hand
    expect(back[1]).toBeCloseTo(q.scales[0] * (stored - 8), 7);
  });

  it("quantizes stacked rows as it quantizes each matrix (the packed q/k/v and gate/up projections)", () => {
    const a = randomArray(4 * 40, 1, 1);
    const b = randomArray(6 * 40, 2, 0.1);
    for (const format of ["int8", "int4"] as const) {
      const stacked = dequantize(quantize(Float32Array.from([...a, ...b]), 10, 40, format));
      expect(Array.from(stacked)).toEqual([...dequantize(quantize(a, 4, 40, format)), ...dequantize(quantize(b, 6, 40, format))]);
    }
  });

  it("an all-zero block stays zero; a shape mismatch is refused", () => {
    const q = quantize(new Float32Array(64), 2, 32, "int4");
    expect(Array.from(dequantize(q)).every((v) => v === 0)).toBe(true);
    expect(() => quantize(new Float32Array(10), 3, 4, "int8")).toThrow(/not \[3, 4\]/);
  });

  it("quantizes the projections and the head, nothing else; a tied head reads the embeddings", () => {
    expect(["model.layers.3.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight"].every(isQuantizedWeight)).toBe(true);
    expect(["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.bias", "model.norm.weight"].some(isQuantizedWeight)).toBe(false);
    const embed = randomArray(8 * 32, 4, 1);
    const lookup = dequantizedLookup((n) => (n === "model.embed_tokens.weight" ? embed : new Float32Array(0)), () => [8, 32], "int4", true);
    expect(lookup("model.embed_tokens.weight")).toBe(embed);
    expect(Array.from(lookup("lm_head.weight"))).toEqual(Array.from(dequantize(quantize(embed, 8, 32, "int4"))));
  });
});
