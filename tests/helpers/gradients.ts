/**
 * Gradient checks for the reverse-mode pass: the analytic gradients come from one onnxruntime
 * session (forward + backward, written with writeOnnx, float32); the expected ones from central
 * finite differences of the float64 reference evaluator (./evaluate.ts).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { Graph, Value } from "../../services/model/graph/ir.ts";
import { writeOnnx } from "../../services/model/graph/onnx.ts";
import { evaluate, type RefTensor } from "./evaluate.ts";

/** Runs `g` once in onnxruntime (CPU) and returns the named outputs' data. */
/** Sessions stay referenced until the process ends: finalizing many onnxruntime sessions mid-run has crashed the worker. */
const sessions: ort.InferenceSession[] = [];

export async function runOrt(g: Graph, feeds: Record<string, RefTensor>, names: string[]): Promise<Record<string, Float32Array>> {
  const dir = await mkdtemp(join(tmpdir(), "sy-autodiff-"));
  try {
    const session = await ort.InferenceSession.create((await writeOnnx(g, dir)).modelPath, { logSeverityLevel: 3 });
    const inputs: Record<string, ort.Tensor> = {};
    for (const v of g.inputs) {
      const t = feeds[v.name];
      if (!t) throw new Error(`runOrt: no feed for ${v.name}`);
      inputs[v.name] =
        v.dtype === "int64"
          ? new ort.Tensor("int64", BigInt64Array.from(t.data, (x) => BigInt(x)), t.shape)
          : v.dtype === "bool"
            ? new ort.Tensor("bool", Uint8Array.from(t.data), t.shape)
            : new ort.Tensor("float32", Float32Array.from(t.data), t.shape);
    }
    sessions.push(session);
    const out = await session.run(inputs, names);
    return Object.fromEntries(names.map((n) => [n, out[n].data as Float32Array]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The float64 loss at `feeds`. */
export function referenceLoss(g: Graph, loss: Value, feeds: Record<string, RefTensor>): number {
  return evaluate(g, feeds, [loss])[0].data[0];
}

/** Central differences (L(x + h·e_i) − L(x − h·e_i)) / 2h of input `name` at the flat `indices` (default all). */
export function finiteDifferences(g: Graph, loss: Value, feeds: Record<string, RefTensor>, name: string, indices?: number[], h = 1e-5): Float64Array {
  const base = feeds[name];
  const at = indices ?? Array.from(base.data, (_, i) => i);
  return Float64Array.from(at, (i) => {
    const shifted = (delta: number) => {
      const data = base.data.slice();
      data[i] += delta;
      return referenceLoss(g, loss, { ...feeds, [name]: { shape: base.shape, data } });
    };
    return (shifted(h) - shifted(-h)) / (2 * h);
  });
}

/** The directional derivative of the loss along `direction` (same shape as input `name`), by central differences. */
export function directionalDifference(g: Graph, loss: Value, feeds: Record<string, RefTensor>, name: string, direction: Float64Array, h = 1e-5): number {
  const base = feeds[name];
  const shifted = (s: number) => referenceLoss(g, loss, { ...feeds, [name]: { shape: base.shape, data: base.data.map((v, i) => v + s * h * direction[i]) } });
  return (shifted(1) - shifted(-1)) / (2 * h);
}

/**
 * Elementwise relative error |a − e| / max(|e|, floor), as an array to hand to expectClose against
 * zeros: elements below the floor are compared absolutely (at the floor's scale).
 */
export function relativeErrors(actual: ArrayLike<number>, expected: ArrayLike<number>, floor: number): Float64Array {
  if (actual.length !== expected.length) throw new Error(`relativeErrors: length ${actual.length}, expected ${expected.length}`);
  return Float64Array.from({ length: expected.length }, (_, i) => Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor));
}

export const maxOf = (a: ArrayLike<number>): number => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
