/**
 * Static shape inference over the graph IR (./ir.ts): fills in the shapes the builders left unknown,
 * symbolically, so later passes can tell at build time whether two values have the same shape.
 *
 *   const shapes = new ShapePass(g);
 *   shapes.run();              // every node so far; call again after appending nodes (incremental)
 *
 * Dimensions are monomials over the graph inputs' symbolic dims: a number, a name ("seq"), or a
 * product written canonically as "<coefficient>*<names sorted>" ("2*seq", "batch*seq"). Small int64
 * tensors that hold shapes are tracked by value (constants, Shape, Size, Gather, Concat, Slice,
 * arithmetic), so a Reshape to [0, 4, -1, 8] or to Shape(x) gets a known result.
 *
 * Invariants: a shape is only ever filled in where it was unknown, never changed; an inferred shape
 * is exact for every run-time size of the symbolic dims (when in doubt the result stays unknown: a
 * broadcast of two different names, a Slice of a symbolic dim other than the whole of it, NonZero).
 * Shapes are build-time knowledge only: the ONNX writer emits them for graph inputs and outputs.
 */
import { broadcast, matmulShape, type Dim, type Graph, type Node, type Value } from "./ir.ts";

/** Largest int64 constant tracked by value. */
const MAX_TRACKED = 64;

// ---- symbolic dimensions ----

interface Monomial {
  k: number;
  names: string[];
}

function monomial(d: Dim): Monomial {
  if (typeof d === "number") return { k: d, names: [] };
  let k = 1;
  const names: string[] = [];
  for (const part of d.split("*")) {
    if (/^\d+$/.test(part)) k *= Number(part);
    else names.push(part);
  }
  return { k, names: names.sort() };
}

function dimOf(m: Monomial): Dim {
  if (m.names.length === 0 || m.k === 0) return m.k;
  return m.k === 1 ? m.names.join("*") : `${m.k}*${m.names.join("*")}`;
}

const sameNames = (a: Monomial, b: Monomial) => a.names.length === b.names.length && a.names.every((n, i) => n === b.names[i]);

export function mulDims(a: Dim, b: Dim): Dim {
  const x = monomial(a);
  const y = monomial(b);
  return dimOf({ k: x.k * y.k, names: [...x.names, ...y.names].sort() });
}

/** a / b when it is exact (b's names all in a, coefficient divides), else undefined. */
export function divDims(a: Dim, b: Dim): Dim | undefined {
  const x = monomial(a);
  const y = monomial(b);
  if (y.k === 0 || x.k % y.k !== 0) return undefined;
  const names = [...x.names];
  for (const n of y.names) {
    const at = names.indexOf(n);
    if (at < 0) return undefined;
    names.splice(at, 1);
  }
  return dimOf({ k: x.k / y.k, names });
}

function addDims(a: Dim, b: Dim, sign: 1 | -1): Dim | undefined {
  const x = monomial(a);
  const y = monomial(b);
  if (y.k === 0) return a;
  if (x.k === 0 && sign === 1) return b;
  if (!sameNames(x, y)) return undefined;
  return dimOf({ k: x.k + sign * y.k, names: x.names });
}

const product = (dims: readonly Dim[]): Dim => dims.reduce<Dim>((p, d) => mulDims(p, d), 1);
const allNumbers = (dims: readonly Dim[]): dims is number[] => dims.every((d) => typeof d === "number");

function broadcastAll(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  return shapes.reduce<Dim[] | undefined>((acc, s) => broadcast(acc, s), []);
}

// ---- the pass ----

export class ShapePass {
  private nodesDone = 0;
  private initializersDone = 0;
  /** Known contents of small int64 tensors (a scalar is a one-element list). */
  private readonly contents = new Map<Value, Dim[]>();

  constructor(private readonly g: Graph) {}

  /** Infers the nodes appended since the last run and fills in their outputs' unknown shapes. */
  run(): void {
    for (; this.initializersDone < this.g.initializers.length; this.initializersDone++) {
      const { value, tensor } = this.g.initializers[this.initializersDone];
      if (tensor.data instanceof BigInt64Array && tensor.data.length <= MAX_TRACKED) this.contents.set(value, Array.from(tensor.data, Number));
    }
    for (; this.nodesDone < this.g.nodes.length; this.nodesDone++) {
      const node = this.g.nodes[this.nodesDone];
      const shapes = this.infer(node);
      node.outputs.forEach((out, i) => {
        const s = shapes[i];
        if (!out.shape && s) (out as { shape: Dim[] | undefined }).shape = s;
      });
      if (node.domain === "") this.track(node);
    }
  }

  /** The known contents of an int64 value (constants and shape arithmetic), if any. */
  valuesOf(v: Value | null | undefined): Dim[] | undefined {
    return v ? this.contents.get(v) : undefined;
  }

  private ints(v: Value | null | undefined): number[] | undefined {
    const c = this.valuesOf(v);
    return c && allNumbers(c) ? c : undefined;
  }

  private infer(n: Node): (Dim[] | undefined)[] {
    const [x] = n.inputs;
    const xs = x?.shape;
    if (n.domain === "com.microsoft") return n.op === "FusedMatMul" ? [fusedMatMulShape(n)] : [];
    if (n.domain !== "") return [];
    if (ELEMENTWISE.has(n.op)) return [broadcastAll(n.inputs.map((v) => v?.shape))];
    if (UNARY.has(n.op)) return [xs];
    switch (n.op) {
      case "MatMul":
        return [matmulShape(xs, n.inputs[1]?.shape)];
      case "Transpose": {
        if (!xs) return [];
        const perm = intsAttr(n, "perm") ?? xs.map((_, i) => xs.length - 1 - i);
        return [perm.map((p) => xs[p])];
      }
      case "Reshape":
        return [reshaped(xs, this.valuesOf(n.inputs[1]), intAttr(n, "allowzero", 0) === 1)];
      case "Unsqueeze":
        return [unsqueezed(xs, this.ints(n.inputs[1]))];
      case "Squeeze":
        return [squeezed(xs, this.ints(n.inputs[1]))];
      case "Split":
        return splitShapes(n, xs, this.valuesOf(n.inputs[1]));
      case "Concat":
        return [concatShape(n.inputs.map((v) => v?.shape), intAttr(n, "axis", 0))];
      case "Slice":
        return [slicedShape(xs, this.ints(n.inputs[1]), this.ints(n.inputs[2]), this.ints(n.inputs[3]), this.ints(n.inputs[4]))];
      case "Gather": {
        const is = n.inputs[1]?.shape;
        if (!xs || !is) return [];
        const axis = normalize(intAttr(n, "axis", 0), xs.length);
        return [[...xs.slice(0, axis), ...is, ...xs.slice(axis + 1)]];
      }
      case "ReduceSum":
      case "ReduceMean":
      case "ReduceMax":
      case "ReduceMin":
      case "ReduceProd":
        return [reducedShape(n, xs, n.inputs[1] ? this.ints(n.inputs[1]) : [])];
      case "ArgMax":
      case "ArgMin":
        return [reducedShape(n, xs, [intAttr(n, "axis", 0)])];
      case "Shape":
        return [xs ? [xs.length] : undefined];
      case "Size":
        return [[]];
      case "ConstantOfShape":
        return [this.valuesOf(x)];
      case "Expand":
        return [broadcast(xs, this.valuesOf(n.inputs[1]))];
      case "Tile": {
        const repeats = this.valuesOf(n.inputs[1]);
        return [xs && repeats && repeats.length === xs.length ? xs.map((d, i) => mulDims(d, repeats[i])) : undefined];
      }
      case "Range":
        return [rangeShape(this.valuesOf(n.inputs[0]), this.valuesOf(n.inputs[1]), this.valuesOf(n.inputs[2]))];
      case "ScatterND":
      case "Pad":
        return n.op === "ScatterND" ? [xs] : [];
      default:
        return [];
    }
  }

  /** Contents of int64 outputs computed from known contents. */
  private track(n: Node): void {
    const out = n.outputs[0];
    if (!out || out.dtype !== "int64") return;
    const set = (c: Dim[] | undefined) => c && c.length <= MAX_TRACKED && this.contents.set(out, c);
    const a = this.valuesOf(n.inputs[0]);
    switch (n.op) {
      case "Shape":
        return void (n.inputs[0]?.shape && !n.attrs.start && !n.attrs.end && set([...n.inputs[0].shape]));
      case "Size":
        return void (n.inputs[0]?.shape && set([product(n.inputs[0].shape)]));
      case "Identity":
      case "Reshape":
      case "Unsqueeze":
      case "Squeeze":
      case "Cast":
        return void set(a);
      case "Concat":
        return void (n.inputs.every((v) => this.valuesOf(v)) && set(n.inputs.flatMap((v) => this.valuesOf(v)!)));
      case "Gather": {
        const idx = this.ints(n.inputs[1]);
        if (!a || !idx) return;
        const picked = idx.map((i) => a[i < 0 ? i + a.length : i]);
        return void (picked.every((d) => d !== undefined) && set(picked));
      }
      case "Slice": {
        const [starts, ends, axes, steps] = [2, 3, 4].reduce<(number[] | undefined)[]>((acc, k) => [...acc, this.ints(n.inputs[k])], [this.ints(n.inputs[1])]);
        if (!a || !starts || !ends || (axes && axes.some((ax) => ax !== 0 && ax !== -1)) || (steps && steps.some((s) => s !== 1))) return;
        const clamp = (v: number) => Math.max(0, Math.min(v < 0 ? v + a.length : v, a.length));
        return void set(a.slice(clamp(starts[0]), clamp(ends[0])));
      }
      case "Add":
      case "Sub":
      case "Mul":
      case "Div": {
        const b = this.valuesOf(n.inputs[1]);
        if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return;
        const len = Math.max(a.length, b.length);
        const f = ARITHMETIC[n.op];
        const r = Array.from({ length: len }, (_, i) => f(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]));
        return void (r.every((d) => d !== undefined) && set(r as Dim[]));
      }
      default:
        return;
    }
  }
}

const ARITHMETIC: Record<string, (a: Dim, b: Dim) => Dim | undefined> = {
  Add: (a, b) => addDims(a, b, 1),
  Sub: (a, b) => addDims(a, b, -1),
  Mul: mulDims,
  Div: (a, b) => (typeof a === "number" && typeof b === "number" ? Math.trunc(a / b) : divDims(a, b)),
};

const ELEMENTWISE = new Set(["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Where"]);
const UNARY = new Set(["Neg", "Sqrt", "Exp", "Log", "Tanh", "Relu", "Sigmoid", "Reciprocal", "Cast", "Identity", "Softmax", "LogSoftmax", "Abs", "Not", "Erf"]);

function intAttr(n: Node, name: string, fallback: number): number {
  const a = n.attrs[name];
  return a && a.kind === "int" ? a.value : fallback;
}

function intsAttr(n: Node, name: string): number[] | undefined {
  const a = n.attrs[name];
  return a && a.kind === "ints" ? a.value : undefined;
}

const normalize = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

function reshaped(xs: Dim[] | undefined, target: Dim[] | undefined, allowZero: boolean): Dim[] | undefined {
  if (!target) return undefined;
  const out: (Dim | undefined)[] = target.map((d, i) => (d === 0 && !allowZero ? xs?.[i] : d === -1 ? undefined : d));
  const free = target.indexOf(-1);
  if (free < 0) return out.every((d) => d !== undefined) ? (out as Dim[]) : undefined;
  if (!xs || out.some((d, i) => i !== free && d === undefined)) return undefined;
  const rest = divDims(product(xs), product(out.filter((_, i) => i !== free) as Dim[]));
  if (rest === undefined) return undefined;
  out[free] = rest;
  return out as Dim[];
}

function unsqueezed(xs: Dim[] | undefined, axes: number[] | undefined): Dim[] | undefined {
  if (!xs || !axes) return undefined;
  const rank = xs.length + axes.length;
  const at = new Set(axes.map((a) => normalize(a, rank)));
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : xs[k++]);
  return out;
}

function squeezed(xs: Dim[] | undefined, axes: number[] | undefined): Dim[] | undefined {
  if (!xs) return undefined;
  if (!axes) return xs.every((d) => typeof d === "number") ? xs.filter((d) => d !== 1) : undefined;
  const at = new Set(axes.map((a) => normalize(a, xs.length)));
  return xs.filter((_, i) => !at.has(i));
}

function splitShapes(n: Node, xs: Dim[] | undefined, sizes: Dim[] | undefined): (Dim[] | undefined)[] {
  if (!xs || !sizes || sizes.length !== n.outputs.length) return [];
  const axis = normalize(intAttr(n, "axis", 0), xs.length);
  return sizes.map((s) => xs.map((d, i) => (i === axis ? s : d)));
}

function concatShape(shapes: (Dim[] | undefined)[], axis: number): Dim[] | undefined {
  if (shapes.length === 0 || shapes.some((s) => !s)) return undefined;
  const first = shapes[0]!;
  const ax = normalize(axis, first.length);
  let total: Dim | undefined = 0;
  for (const s of shapes as Dim[][]) {
    if (s.length !== first.length || s.some((d, i) => i !== ax && d !== first[i])) return undefined;
    total = total === undefined ? undefined : addDims(total, s[ax], 1);
  }
  return total === undefined ? undefined : first.map((d, i) => (i === ax ? total! : d));
}

function slicedShape(xs: Dim[] | undefined, starts?: number[], ends?: number[], axes?: number[], steps?: number[]): Dim[] | undefined {
  if (!xs || !starts || !ends) return undefined;
  const out = [...xs];
  for (let i = 0; i < starts.length; i++) {
    const axis = normalize(axes ? axes[i] : i, xs.length);
    const step = steps ? steps[i] : 1;
    const d = xs[axis];
    if (step !== 1) return undefined;
    if (typeof d !== "number") {
      if (starts[i] === 0 && ends[i] >= 2 ** 31 - 1) continue;
      return undefined;
    }
    const clamp = (v: number) => Math.max(0, Math.min(v < 0 ? v + d : v, d));
    out[axis] = Math.max(0, clamp(ends[i]) - clamp(starts[i]));
  }
  return out;
}

function reducedShape(n: Node, xs: Dim[] | undefined, axes: number[] | undefined): Dim[] | undefined {
  if (!xs || !axes) return undefined;
  const keep = intAttr(n, "keepdims", 1) === 1;
  if (axes.length === 0 && intAttr(n, "noop_with_empty_axes", 0) === 1) return xs;
  const all = axes.length === 0;
  const at = new Set(axes.map((a) => normalize(a, xs.length)));
  const out: Dim[] = [];
  xs.forEach((d, i) => {
    if (!all && !at.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return out;
}

function rangeShape(start?: Dim[], limit?: Dim[], delta?: Dim[]): Dim[] | undefined {
  if (!start || !limit || !delta || delta[0] !== 1) return undefined;
  const length = addDims(limit[0], start[0], -1);
  return length === undefined ? undefined : [length];
}

function fusedMatMulShape(n: Node): Dim[] | undefined {
  const swap = (s: Dim[] | undefined, on: boolean) => (s && on && s.length >= 2 ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);
  return matmulShape(swap(n.inputs[0]?.shape, intAttr(n, "transA", 0) === 1), swap(n.inputs[1]?.shape, intAttr(n, "transB", 0) === 1));
}
