/**
 * A float64 reference evaluator of the graph IR (services/model/graph/ir.ts): plain TypeScript, for
 * the ops of the training graph, its loss and the backward-rule tests. It is the oracle of the
 * central finite differences that check the reverse-mode pass, so it shares no code with onnxruntime
 * or the backward rules. Test-only: it is slow (no kernels), and nothing in serving or training runs it.
 *
 * Every tensor holds float64 numbers whatever its dtype (int64 values are exact below 2^53; bool is
 * 0/1). `evaluate` computes only the nodes the requested values depend on, so a graph that already
 * holds backward nodes (Einsum, ScatterND, ...) can still be evaluated for its forward values.
 */
import { isFileBytes, type Graph, type Node, type Value } from "../../services/model/graph/ir.ts";

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

export const refTensor = (shape: number[], data: ArrayLike<number | bigint>): RefTensor => ({
  shape: [...shape],
  data: Float64Array.from(Array.from(data, Number)),
});

/** The values `outputs` of `g` given `feeds` (graph inputs by name, as float64 or ints). */
export function evaluate(g: Graph, feeds: Record<string, RefTensor>, outputs: readonly Value[]): RefTensor[] {
  const env = new Map<Value, RefTensor>();
  for (const { value, tensor } of g.initializers) {
    if (isFileBytes(tensor.data)) throw new Error(`evaluate: initializer ${value.name} lies in a file; build the graph from weights in memory`);
    env.set(value, refTensor(tensor.shape, tensor.data));
  }
  for (const v of g.inputs) {
    const t = feeds[v.name];
    if (t) env.set(v, t);
  }
  const producer = new Map<Value, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const wanted = new Set<Node>();
  const stack = [...outputs];
  while (stack.length) {
    const v = stack.pop()!;
    const n = producer.get(v);
    if (!n || wanted.has(n)) continue;
    wanted.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  for (const n of g.nodes) {
    if (!wanted.has(n)) continue;
    const args = n.inputs.map((v) => {
      if (!v) return undefined;
      const t = env.get(v);
      if (!t) throw new Error(`evaluate: no value for "${v.name}" (a missing feed?)`);
      return t;
    });
    const results = run(n, args);
    n.outputs.forEach((o, i) => env.set(o, results[i]));
  }
  return outputs.map((v) => {
    const t = env.get(v);
    if (!t) throw new Error(`evaluate: "${v.name}" was not computed`);
    return t;
  });
}

// ---- shapes and indexing ----

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const stridesOf = (shape: number[]) => {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
};
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const ints = (t: RefTensor | undefined): number[] => (t ? Array.from(t.data) : []);

function broadcastShape(shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: rank }, (_, i) => {
    let d = 1;
    for (const s of shapes) {
      const k = s[s.length - rank + i] ?? 1;
      if (k !== 1) {
        if (d !== 1 && d !== k) throw new Error(`evaluate: cannot broadcast [${shapes.map((x) => `[${x}]`)}]`);
        d = k;
      }
    }
    return d;
  });
}

/** Elementwise f over the broadcast of `inputs`. */
function elementwise(inputs: RefTensor[], f: (...x: number[]) => number): RefTensor {
  const shape = broadcastShape(inputs.map((t) => t.shape));
  const rank = shape.length;
  const outStrides = stridesOf(shape);
  const inStrides = inputs.map((t) => {
    const s = stridesOf(t.shape);
    return shape.map((d, i) => {
      const j = i - (rank - t.shape.length);
      return j < 0 || t.shape[j] === 1 ? 0 : s[j];
    });
  });
  const n = count(shape);
  const data = new Float64Array(n);
  const xs = new Array<number>(inputs.length);
  for (let e = 0; e < n; e++) {
    for (let k = 0; k < inputs.length; k++) {
      let off = 0;
      let rest = e;
      for (let i = 0; i < rank; i++) {
        const idx = Math.floor(rest / outStrides[i]);
        rest -= idx * outStrides[i];
        off += idx * inStrides[k][i];
      }
      xs[k] = inputs[k].data[off];
    }
    data[e] = f(...xs);
  }
  return { shape, data };
}

/** Maps each element of a tensor of `shape` to an output index via `target(index) -> flat out`. */
function permuteCopy(x: RefTensor, outShape: number[], sourceIndex: (outIdx: number[]) => number): RefTensor {
  const n = count(outShape);
  const strides = stridesOf(outShape);
  const data = new Float64Array(n);
  const idx = new Array<number>(outShape.length);
  for (let e = 0; e < n; e++) {
    let rest = e;
    for (let i = 0; i < outShape.length; i++) {
      idx[i] = Math.floor(rest / strides[i]);
      rest -= idx[i] * strides[i];
    }
    data[e] = x.data[sourceIndex(idx)];
  }
  return { shape: outShape, data };
}

function flatIndex(idx: number[], strides: number[]): number {
  let off = 0;
  for (let i = 0; i < idx.length; i++) off += idx[i] * strides[i];
  return off;
}

function reduce(x: RefTensor, axesIn: number[], keep: boolean, init: number, f: (acc: number, v: number) => number, finish = (acc: number, _n: number) => acc): RefTensor {
  const rank = x.shape.length;
  const axes = (axesIn.length ? axesIn : x.shape.map((_, i) => i)).map((a) => norm(a, rank));
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const acc = new Float64Array(count(kept)).fill(init);
  const inStrides = stridesOf(x.shape);
  const outStrides = stridesOf(kept);
  for (let e = 0; e < x.data.length; e++) {
    let rest = e;
    let off = 0;
    for (let i = 0; i < rank; i++) {
      const idx = Math.floor(rest / inStrides[i]);
      rest -= idx * inStrides[i];
      if (!axes.includes(i)) off += idx * outStrides[i];
    }
    acc[off] = f(acc[off], x.data[e]);
  }
  const n = x.data.length / acc.length;
  const data = acc.map((a) => finish(a, n));
  return { shape: keep ? kept : x.shape.filter((_, i) => !axes.includes(i)), data };
}

/** x as [outer, dim, inner] around `axis`. */
function around(shape: number[], axis: number): [number, number, number] {
  return [count(shape.slice(0, axis)), shape[axis], count(shape.slice(axis + 1))];
}

function intAttr(n: Node, name: string, fallback: number): number {
  const a = n.attrs[name];
  return a?.kind === "int" ? a.value : fallback;
}

// ---- ops ----

function run(n: Node, a: (RefTensor | undefined)[]): RefTensor[] {
  const x = a[0]!;
  const unary = (f: (v: number) => number): RefTensor[] => [{ shape: [...x.shape], data: x.data.map(f) }];
  const binary = (f: (p: number, q: number) => number): RefTensor[] => [elementwise([x, a[1]!], f)];
  switch (n.op) {
    case "Add": return binary((p, q) => p + q);
    case "Sub": return binary((p, q) => p - q);
    case "Mul": return binary((p, q) => p * q);
    case "Div": return binary((p, q) => p / q);
    case "Pow": return binary((p, q) => Math.pow(p, q));
    case "Max": return [elementwise(a as RefTensor[], (...v) => Math.max(...v))];
    case "Min": return [elementwise(a as RefTensor[], (...v) => Math.min(...v))];
    case "Equal": return binary((p, q) => Number(p === q));
    case "Less": return binary((p, q) => Number(p < q));
    case "Greater": return binary((p, q) => Number(p > q));
    case "LessOrEqual": return binary((p, q) => Number(p <= q));
    case "And": return binary((p, q) => Number(p !== 0 && q !== 0));
    case "Where": return [elementwise([x, a[1]!, a[2]!], (c, p, q) => (c !== 0 ? p : q))];
    case "Neg": return unary((v) => -v);
    case "Sqrt": return unary(Math.sqrt);
    case "Reciprocal": return unary((v) => 1 / v);
    case "Exp": return unary(Math.exp);
    case "Log": return unary(Math.log);
    case "Tanh": return unary(Math.tanh);
    case "Sigmoid": return unary((v) => 1 / (1 + Math.exp(-v)));
    case "Relu": return unary((v) => Math.max(v, 0));
    case "Identity": return unary((v) => v);
    case "Cast": {
      const to = intAttr(n, "to", 1);
      return unary(to === 9 ? (v) => Number(v !== 0) : to === 6 || to === 7 ? Math.trunc : (v) => v);
    }
    case "Shape": return [refTensor([x.shape.length], x.shape)];
    case "Size": return [refTensor([], [x.data.length])];
    case "ConstantOfShape": {
      const fill = n.attrs.value?.kind === "tensor" ? Number(n.attrs.value.value.data[0]) : 0;
      const shape = ints(x);
      return [{ shape, data: new Float64Array(count(shape)).fill(fill) }];
    }
    case "Range": {
      const [start, limit, delta] = [x.data[0], a[1]!.data[0], a[2]!.data[0]];
      const len = Math.max(Math.ceil((limit - start) / delta), 0);
      return [refTensor([len], Array.from({ length: len }, (_, i) => start + i * delta))];
    }
    case "Reshape": {
      const spec = ints(a[1]);
      const shape = spec.map((d, i) => (d === 0 ? x.shape[i] : d));
      const known = shape.reduce((p, d) => (d === -1 ? p : p * d), 1);
      return [{ shape: shape.map((d) => (d === -1 ? x.data.length / known : d)), data: x.data }];
    }
    case "Unsqueeze": {
      const rank = x.shape.length + a[1]!.data.length;
      const axes = ints(a[1]).map((ax) => norm(ax, rank));
      const shape: number[] = [];
      for (let i = 0, j = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : x.shape[j++]);
      return [{ shape, data: x.data }];
    }
    case "Squeeze": {
      const axes = a[1] ? ints(a[1]).map((ax) => norm(ax, x.shape.length)) : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
      return [{ shape: x.shape.filter((_, i) => !axes.includes(i)), data: x.data }];
    }
    case "Transpose": {
      const p = n.attrs.perm?.kind === "ints" ? n.attrs.perm.value : x.shape.map((_, i) => x.shape.length - 1 - i);
      const inStrides = stridesOf(x.shape);
      const src = new Array<number>(p.length);
      return [permuteCopy(x, p.map((i) => x.shape[i]), (idx) => {
        for (let i = 0; i < p.length; i++) src[p[i]] = idx[i];
        return flatIndex(src, inStrides);
      })];
    }
    case "Expand": {
      const shape = broadcastShape([x.shape, ints(a[1])]);
      return [elementwise([x, { shape, data: new Float64Array(count(shape)) }], (v) => v)];
    }
    case "Tile": {
      const reps = ints(a[1]);
      const inStrides = stridesOf(x.shape);
      return [permuteCopy(x, x.shape.map((d, i) => d * reps[i]), (idx) => flatIndex(idx.map((v, i) => v % x.shape[i]), inStrides))];
    }
    case "Concat": {
      const parts = a as RefTensor[];
      const axis = norm(intAttr(n, "axis", 0), x.shape.length);
      const total = parts.reduce((s, t) => s + t.shape[axis], 0);
      const shape = x.shape.map((d, i) => (i === axis ? total : d));
      const [outer, , inner] = around(shape, axis);
      const data = new Float64Array(count(shape));
      let at = 0;
      for (const t of parts) {
        const d = t.shape[axis];
        for (let o = 0; o < outer; o++) data.set(t.data.subarray(o * d * inner, (o + 1) * d * inner), (o * total + at) * inner);
        at += d;
      }
      return [{ shape, data }];
    }
    case "Split": {
      const axis = norm(intAttr(n, "axis", 0), x.shape.length);
      const sizes = a[1] ? ints(a[1]) : new Array<number>(n.outputs.length).fill(x.shape[axis] / n.outputs.length);
      const [outer, dim, inner] = around(x.shape, axis);
      let at = 0;
      return sizes.map((d) => {
        const data = new Float64Array(outer * d * inner);
        for (let o = 0; o < outer; o++) data.set(x.data.subarray((o * dim + at) * inner, (o * dim + at + d) * inner), o * d * inner);
        at += d;
        return { shape: x.shape.map((s, i) => (i === axis ? d : s)), data };
      });
    }
    case "Slice": {
      const starts = ints(a[1]);
      const ends = ints(a[2]);
      const axes = a[3] ? ints(a[3]).map((ax) => norm(ax, x.shape.length)) : starts.map((_, i) => i);
      const steps = a[4] ? ints(a[4]) : starts.map(() => 1);
      const begin = x.shape.map(() => 0);
      const step = x.shape.map(() => 1);
      const shape = [...x.shape];
      axes.forEach((ax, i) => {
        if (steps[i] <= 0) throw new Error("evaluate: Slice steps must be positive");
        const dim = x.shape[ax];
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        const s = clamp(starts[i]);
        const e = clamp(ends[i]);
        begin[ax] = s;
        step[ax] = steps[i];
        shape[ax] = Math.max(Math.ceil((e - s) / steps[i]), 0);
      });
      const inStrides = stridesOf(x.shape);
      return [permuteCopy(x, shape, (idx) => flatIndex(idx.map((v, i) => begin[i] + v * step[i]), inStrides))];
    }
    case "Gather": {
      const idx = a[1]!;
      const axis = norm(intAttr(n, "axis", 0), x.shape.length);
      const [outer, dim, inner] = around(x.shape, axis);
      const m = idx.data.length;
      const data = new Float64Array(outer * m * inner);
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < m; j++) {
          const r = idx.data[j] < 0 ? idx.data[j] + dim : idx.data[j];
          if (r < 0 || r >= dim) throw new Error(`evaluate: Gather index ${idx.data[j]} out of range`);
          data.set(x.data.subarray((o * dim + r) * inner, (o * dim + r + 1) * inner), (o * m + j) * inner);
        }
      }
      return [{ shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)], data }];
    }
    case "MatMul": return [matmul(x, a[1]!)];
    case "Softmax":
    case "LogSoftmax": {
      const axis = norm(intAttr(n, "axis", -1), x.shape.length);
      const [outer, dim, inner] = around(x.shape, axis);
      const data = new Float64Array(x.data.length);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const at = (k: number) => (o * dim + k) * inner + i;
          let max = -Infinity;
          for (let k = 0; k < dim; k++) max = Math.max(max, x.data[at(k)]);
          let sum = 0;
          for (let k = 0; k < dim; k++) sum += Math.exp(x.data[at(k)] - max);
          for (let k = 0; k < dim; k++) {
            const z = x.data[at(k)] - max;
            data[at(k)] = n.op === "Softmax" ? Math.exp(z) / sum : z - Math.log(sum);
          }
        }
      }
      return [{ shape: [...x.shape], data }];
    }
    case "ReduceSum":
    case "ReduceMean":
    case "ReduceMax": {
      const axes = ints(a[1]);
      const keep = intAttr(n, "keepdims", 1) === 1;
      if (!axes.length && intAttr(n, "noop_with_empty_axes", 0) === 1) return [x];
      if (n.op === "ReduceMax") return [reduce(x, axes, keep, -Infinity, Math.max)];
      return [reduce(x, axes, keep, 0, (s, v) => s + v, n.op === "ReduceMean" ? (s, k) => s / k : undefined)];
    }
    default:
      throw new Error(`evaluate: op ${n.op} is not supported by the reference evaluator`);
  }
}

/** Batched matrix product with numpy broadcasting of the batch axes (both operands at least 2-D). */
function matmul(a: RefTensor, b: RefTensor): RefTensor {
  if (a.shape.length < 2 || b.shape.length < 2) throw new Error("evaluate: MatMul of a 1-D operand is not supported");
  const [m, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k !== k2) throw new Error(`evaluate: MatMul [${a.shape}]·[${b.shape}]`);
  const batch = broadcastShape([a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  const batches = count(batch);
  const offsets = (shape: number[]) => {
    const own = shape.slice(0, -2);
    const strides = stridesOf(own);
    const outStrides = stridesOf(batch);
    return Array.from({ length: batches }, (_, e) => {
      let rest = e;
      let off = 0;
      batch.forEach((_, i) => {
        const idx = Math.floor(rest / outStrides[i]);
        rest -= idx * outStrides[i];
        const j = i - (batch.length - own.length);
        if (j >= 0 && own[j] !== 1) off += idx * strides[j];
      });
      return off;
    });
  };
  const ao = offsets(a.shape);
  const bo = offsets(b.shape);
  const data = new Float64Array(batches * m * n);
  for (let e = 0; e < batches; e++) {
    const ab = ao[e] * m * k;
    const bb = bo[e] * k * n;
    const ob = e * m * n;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const av = a.data[ab + i * k + p];
        if (av === 0) continue;
        for (let j = 0; j < n; j++) data[ob + i * n + j] += av * b.data[bb + p * n + j];
      }
    }
  }
  return { shape: [...batch, m, n], data };
}
