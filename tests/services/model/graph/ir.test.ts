import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { Graph } from "../../../../services/model/graph/ir.ts";
import { emitOnnx, writeOnnx } from "../../../../services/model/graph/onnx.ts";
import { expectClose } from "../../../helpers/compare.ts";

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31 - 0.5;
  });
}

/** y = relu(x·W + b) then softmax over the last axis, in plain TypeScript. */
function reference(x: Float32Array, w: Float32Array, b: Float32Array, rows: number, k: number, n: number): Float32Array {
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      let acc = b[j];
      for (let i = 0; i < k; i++) acc += x[r * k + i] * w[i * n + j];
      y[r * n + j] = Math.max(acc, 0);
      max = Math.max(max, y[r * n + j]);
    }
    let sum = 0;
    for (let j = 0; j < n; j++) sum += (y[r * n + j] = Math.exp(y[r * n + j] - max));
    for (let j = 0; j < n; j++) y[r * n + j] /= sum;
  }
  return y;
}

function tinyGraph(w: Float32Array, b: Float32Array, k: number, n: number): Graph {
  const g = new Graph("tiny");
  const x = g.input("x", "float32", ["rows", k]);
  const y = g.relu(g.linear(x, g.initializer("w", "float32", [k, n], w), g.initializer("b", "float32", [n], b)));
  g.output(g.softmax(y), "y");
  return g;
}

describe("graph IR + ONNX emitter", () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  const [rows, k, n] = [3, 40, 17];
  const x = rand(rows * k, 1);
  const w = rand(k * n, 2);
  const b = rand(n, 3);
  const expected = reference(x, w, b, rows, k, n);

  it("runs an inline model on onnxruntime and matches the TypeScript computation", async () => {
    const { model, externalData } = emitOnnx(tinyGraph(w, b, k, n));
    expect(externalData).toHaveLength(0);
    const session = await ort.InferenceSession.create(model);
    const out = await session.run({ x: new ort.Tensor("float32", x, [rows, k]) });
    expect(out.y.dims).toEqual([rows, n]);
    const got = out.y.data as Float32Array;
    expectClose(got, expected, 5e-7);
  });

  it("writes weights as external data and loads the model by path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sy-ir-"));
    dirs.push(dir);
    const files = await writeOnnx(tinyGraph(w, b, k, n), dir, "tiny");
    const session = await ort.InferenceSession.create(files.modelPath);
    const out = await session.run({ x: new ort.Tensor("float32", x, [rows, k]) });
    const got = out.y.data as Float32Array;
    expectClose(got, expected, 5e-7);
  });

  it("sweeps the temporary files of a writer that died, and keeps a live writer's", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sy-ir-"));
    dirs.push(dir);
    const dead = 2 ** 22 + 1; // above Linux's largest possible pid (2^22), so no process has it
    await writeFile(join(dir, `tiny.bin.tmp-${dead}-1`), "half");
    await writeFile(join(dir, `other.onnx.tmp-${process.pid}-1`), "in progress");
    await writeOnnx(tinyGraph(w, b, k, n), dir, "tiny");
    expect((await readdir(dir)).sort()).toEqual([`other.onnx.tmp-${process.pid}-1`, "tiny.bin", "tiny.onnx"]);
  });

  it("rejects an initializer whose data does not fit its shape", () => {
    const g = new Graph();
    expect(() => g.initializer("w", "float32", [2, 3], new Float32Array(5))).toThrow(/needs 6 elements, got 5/);
  });
});
