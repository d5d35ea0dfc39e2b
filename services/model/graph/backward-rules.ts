/**
 * Backward rules of the graph IR's ops, one per forward op (reverse mode, see ./autodiff.ts).
 *
 * A rule gets the forward node, the upstream gradient of each of its outputs (the pass fills a
 * missing one with zeros) and which inputs need a gradient; it appends the nodes that compute those
 * gradients and returns one per input (`undefined` for an input that needs none or has none, such as
 * an int64 index). Invariants every rule keeps:
 *   - a returned gradient has exactly its input's shape (broadcast axes summed away by `sumTo`);
 *   - sizes are read at run time (Shape, Size) where they are needed as data, so the gradient graph
 *     keeps the forward graph's symbolic batch and sequence sizes; static shapes (`Value.shape`,
 *     filled in by the shape pass) only decide at build time whether a reduction or a transpose
 *     is needed and which axes it takes;
 *   - float32 only (constants are float32), standard ONNX ops only (opset 21).
 * An op without a rule is an error naming it (`backwardRule`).
 */
import { attr, type Dim, type Graph, type Node, type Tensor, type Value } from "./ir.ts";

/** What a rule may ask of the pass beyond its own node (rules that use it fall back without it). */
export interface BackwardContext {
  /** The forward nodes that read `v`. */
  consumers(v: Value): readonly Node[];
  /** The total gradient of a value the node reads or computes (complete: its readers' rules have run), if any. */
  gradient(v: Value): Value | undefined;
}

/** Input gradients of `node` given its outputs' gradients `dys` and which inputs `needs` one. */
export type BackwardRule = (g: Graph, node: Node, dys: Value[], needs: readonly boolean[], context?: BackwardContext) => (Value | undefined)[];

// ---- helpers ----

const f32 = (v: number): Tensor => ({ dtype: "float32", shape: [1], data: Float32Array.of(v) });
const scalar = (g: Graph, v: number): Value => g.constFloat([v], []);
const shape = (g: Graph, v: Value): Value => g.op1("Shape", [v], { dtype: "int64" });
const size = (g: Graph, v: Value): Value => g.op1("Size", [v], { dtype: "int64", shape: [] });

/** A float tensor of `v`'s run-time shape filled with `fill`. */
export function filledLike(g: Graph, v: Value, fill: number): Value {
  return g.op1("ConstantOfShape", [shape(g, v)], { attrs: { value: attr.tensor(f32(fill)) }, dtype: "float32", shape: v.shape });
}

/**
 * The gradient of a broadcast operand: `grad` (of the broadcast result) summed over the leading axes
 * `x` lacks and over the axes where `x` has size 1, so it takes x's shape. With both static shapes
 * known (autodiff runs the shape pass, ./shapes.ts, first) nothing is emitted when they are equal and
 * one ReduceSum over constant axes otherwise; only a shape the pass could not infer falls back to
 * axes computed at run time.
 */
export function sumTo(g: Graph, grad: Value, x: Value): Value {
  if (sameKnownShape(grad, x)) return grad;
  const axes = broadcastAxes(grad.shape, x.shape);
  if (axes) {
    const lead = grad.shape!.length - x.shape!.length;
    const summed = g.op1("ReduceSum", [grad, g.constInt64(axes)], { attrs: { keepdims: attr.int(1) }, shape: grad.shape!.map((d, i) => (axes.includes(i) ? 1 : d)) });
    return lead === 0 ? summed : g.op1("Squeeze", [summed, g.constInt64(Array.from({ length: lead }, (_, i) => i))], { shape: x.shape });
  }
  const gs = shape(g, grad);
  const xs = shape(g, x);
  const lead = g.op1("Range", [g.constInt64([0], []), g.sub(size(g, gs), size(g, xs)), g.constInt64([1], [])]);
  const noop = { noop_with_empty_axes: attr.int(1) };
  const trimmed = g.op1("ReduceSum", [grad, lead], { attrs: { keepdims: attr.int(0), ...noop } });
  const ones = g.op1("NonZero", [g.equal(xs, g.constInt64([1], []))], { dtype: "int64" }); // [1, k]
  const summed = g.op1("ReduceSum", [trimmed, g.reshape(ones, [-1])], { attrs: { keepdims: attr.int(1), ...noop } });
  return g.op1("Reshape", [summed, xs], { shape: x.shape });
}

/**
 * The axes of a `from`-shaped tensor to sum so it broadcasts back to `to`: the leading axes `to`
 * lacks and those where `to` has 1 and `from` does not; undefined unless that is certain from the
 * static shapes (a symbolic dim of `from` over a 1 of `to` is summed: it may be any size).
 */
export function broadcastAxes(from: Dim[] | undefined, to: Dim[] | undefined): number[] | undefined {
  if (!from || !to || from.length < to.length) return undefined;
  const lead = from.length - to.length;
  const axes = Array.from({ length: lead }, (_, i) => i);
  for (let j = 0; j < to.length; j++) {
    const f = from[lead + j];
    if (f === to[j]) continue;
    if (to[j] !== 1) return undefined;
    axes.push(lead + j);
  }
  return axes;
}

function sameKnownShape(a: Value, b: Value): boolean {
  return !!a.shape && !!b.shape && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape![i]);
}

/** The int64 values of a constant (initializer) input; rules that need static attributes use it. */
export function constantInts(g: Graph, v: Value | null, what: string): number[] {
  const init = v && g.initializers.find((i) => i.value === v);
  if (!init || !(init.tensor.data instanceof BigInt64Array)) throw new Error(`backward: ${what} must be a constant int64 initializer`);
  return Array.from(init.tensor.data, (x) => Number(x));
}

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && a.kind === "int" ? a.value : fallback;
}

function intsAttr(node: Node, name: string): number[] | undefined {
  const a = node.attrs[name];
  return a && a.kind === "ints" ? a.value : undefined;
}

/** x with its last two axes swapped: a Transpose when the rank is known, else an Einsum (any rank). */
function transposeLast(g: Graph, x: Value): Value {
  const rank = x.shape?.length;
  if (rank !== undefined) return g.transpose(x, [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2]);
  return g.op1("Einsum", [x], { attrs: { equation: attr.string("...ij->...ji") } });
}

/**
 * aᵀ·dy of a batched MatMul (before any broadcast sum). When dy is thin (its last dim a number
 * smaller than a's last dim, as the values of attention: dV = Pᵀ·dO) it is computed as (dyᵀ·a)ᵀ,
 * so the large operand is read in its own layout and only the small result is transposed.
 */
function weightGradient(g: Graph, a: Value, dy: Value): Value {
  const n = dy.shape?.[dy.shape.length - 1];
  const k = a.shape?.[a.shape.length - 1];
  const thin = typeof n === "number" && (typeof k === "string" || (typeof k === "number" && n < k));
  return thin ? transposeLast(g, g.matmul(transposeLast(g, dy), a)) : g.matmul(transposeLast(g, a), dy);
}

/**
 * Σ_j dy_ij·y_ij of a softmax y over the last axis whose only reader is o = y·v (attention's
 * probabilities times values): then dy = do·vᵀ and the sum is Σ_d do_id·o_id, a row sum over the
 * narrow o (FlashAttention's D) instead of over y. Undefined when the pattern does not hold.
 */
function attentionRowSum(g: Graph, n: Node, context: BackwardContext | undefined): Value | undefined {
  const y = n.outputs[0];
  const rank = y.shape?.length;
  const axis = intAttr(n, "axis", -1);
  if (!context || rank === undefined || (axis !== -1 && axis !== rank - 1)) return undefined;
  const readers = context.consumers(y);
  const product = readers.length === 1 ? readers[0] : undefined;
  if (!product || product.op !== "MatMul" || product.domain !== "" || product.inputs[0] !== y || product.inputs[1] === y) return undefined;
  const o = product.outputs[0];
  const dO = context.gradient(o);
  const sameRows = o.shape?.length === rank && y.shape!.slice(0, -1).every((d, i) => d === o.shape![i]);
  if (!dO || !sameRows) return undefined;
  return g.op1("ReduceSum", [g.mul(dO, o), g.constInt64([-1])], { attrs: { keepdims: attr.int(1) } });
}

/** Calls `f` only when the input needs a gradient. */
const when = (need: boolean, f: () => Value): Value | undefined => (need ? f() : undefined);

/** The gradient of an op that only moves elements around without changing their count: dx = reshape(dy, shape(x)). */
const reshapeBack: BackwardRule = (g, n, [dy], needs) => [when(needs[0], () => g.op1("Reshape", [dy, shape(g, n.inputs[0]!)], { shape: n.inputs[0]!.shape }))];

/** Sum reductions: dx = expand(dy with the reduced axes restored, shape(x)). */
function expandReduced(g: Graph, n: Node, dy: Value): Value {
  const x = n.inputs[0]!;
  const axes = n.inputs[1] ?? null;
  const keep = intAttr(n, "keepdims", 1) === 1;
  if (!axes && intAttr(n, "noop_with_empty_axes", 0) === 1) return dy;
  const restored = keep || !axes ? dy : g.op1("Unsqueeze", [dy, axes]);
  return g.op1("Expand", [restored, shape(g, x)], { shape: x.shape });
}

// ---- the rules ----

export const BACKWARD_RULES: Readonly<Record<string, BackwardRule>> = {
  // y = a + b: da = dy, db = dy (summed over broadcast axes)
  Add: (g, n, [dy], needs) => [when(needs[0], () => sumTo(g, dy, n.inputs[0]!)), when(needs[1], () => sumTo(g, dy, n.inputs[1]!))],
  // y = a - b: da = dy, db = -dy
  Sub: (g, n, [dy], needs) => [when(needs[0], () => sumTo(g, dy, n.inputs[0]!)), when(needs[1], () => sumTo(g, g.neg(dy), n.inputs[1]!))],
  // y = a·b: da = dy·b, db = dy·a
  Mul: (g, n, [dy], needs) => {
    const [a, b] = n.inputs as Value[];
    return [when(needs[0], () => sumTo(g, g.mul(dy, b), a)), when(needs[1], () => sumTo(g, g.mul(dy, a), b))];
  },
  // y = a / b: da = dy / b, db = -dy·y / b
  Div: (g, n, [dy], needs) => {
    const [a, b] = n.inputs as Value[];
    const y = n.outputs[0];
    return [when(needs[0], () => sumTo(g, g.div(dy, b), a)), when(needs[1], () => sumTo(g, g.neg(g.div(g.mul(dy, y), b)), b))];
  },
  // y = -x: dx = -dy
  Neg: (g, _n, [dy], needs) => [when(needs[0], () => g.neg(dy))],
  // y = a^b: da = dy·b·a^(b-1), db = dy·y·ln(a)
  Pow: (g, n, [dy], needs) => {
    const [a, b] = n.inputs as Value[];
    const y = n.outputs[0];
    return [
      when(needs[0], () => sumTo(g, g.mul(dy, g.mul(b, g.pow(a, g.sub(b, scalar(g, 1))))), a)),
      when(needs[1], () => sumTo(g, g.mul(dy, g.mul(y, g.op1("Log", [a]))), b)),
    ];
  },
  // y = sqrt(x): dx = dy / (2y)
  Sqrt: (g, n, [dy], needs) => [when(needs[0], () => g.div(g.mul(dy, scalar(g, 0.5)), n.outputs[0]))],
  // y = 1/x: dx = -dy·y²
  Reciprocal: (g, n, [dy], needs) => [when(needs[0], () => g.neg(g.mul(dy, g.mul(n.outputs[0], n.outputs[0]))))],
  // y = e^x: dx = dy·y
  Exp: (g, n, [dy], needs) => [when(needs[0], () => g.mul(dy, n.outputs[0]))],
  // y = ln(x): dx = dy / x
  Log: (g, n, [dy], needs) => [when(needs[0], () => g.div(dy, n.inputs[0]!))],
  // y = tanh(x): dx = dy·(1 - y²)
  Tanh: (g, n, [dy], needs) => [when(needs[0], () => g.mul(dy, g.sub(scalar(g, 1), g.mul(n.outputs[0], n.outputs[0]))))],
  // y = σ(x): dx = dy·y·(1 - y)  (SiLU x·σ(x) is Mul + Sigmoid, so its rule is the product rule of these two)
  Sigmoid: (g, n, [dy], needs) => [when(needs[0], () => g.mul(dy, g.mul(n.outputs[0], g.sub(scalar(g, 1), n.outputs[0]))))],
  // y = max(x, 0): dx = dy where x > 0
  Relu: (g, n, [dy], needs) => [when(needs[0], () => g.where(g.op1("Greater", [n.inputs[0]!, scalar(g, 0)], { dtype: "bool" }), dy, scalar(g, 0)))],
  // y = x: dx = dy
  Identity: (_g, _n, [dy], needs) => [needs[0] ? dy : undefined],
  // y = cast(x): dx = cast(dy) back to x's dtype (float to float only; int paths carry no gradient)
  Cast: (g, n, [dy], needs) => [when(needs[0], () => (n.inputs[0]!.dtype === dy.dtype ? dy : g.cast(dy, n.inputs[0]!.dtype)))],

  // y = a·b (batched, broadcast): da = dy·bᵀ, db = aᵀ·dy, each summed over broadcast batch axes
  MatMul: (g, n, [dy], needs) => {
    const [a, b] = n.inputs as Value[];
    if (a.shape?.length === 1 || b.shape?.length === 1) throw new Error("backward: MatMul of a 1-D operand is not supported");
    if (b.shape?.length === 2) {
      // a weight [K, N]: da = dy·bᵀ has a's shape already; db = (a as [rows, K])ᵀ·(dy as [rows, N]), one 2-D product
      const rows = (v: Value, axis: number) => {
        const width = b.shape![axis];
        const target = typeof width === "number" ? g.constInt64([-1, width]) : g.concat([g.constInt64([-1]), g.slice(shape(g, b), [axis], [axis + 1], [0])], 0);
        return g.op1("Reshape", [v, target]);
      };
      return [when(needs[0], () => g.matmul(dy, g.transpose(b, [1, 0]))), when(needs[1], () => g.matmul(g.transpose(rows(a, 0), [1, 0]), rows(dy, 1)))];
    }
    return [when(needs[0], () => sumTo(g, g.matmul(dy, transposeLast(g, b)), a)), when(needs[1], () => sumTo(g, weightGradient(g, a, dy), b))];
  },
  // y = Σ_axes x: dx = dy broadcast back over the reduced axes
  ReduceSum: (g, n, [dy], needs) => [when(needs[0], () => expandReduced(g, n, dy))],
  // y = mean_axes x: dx = dy broadcast back, times |y| / |x|
  ReduceMean: (g, n, [dy], needs) => [
    when(needs[0], () => {
      const ratio = g.div(g.cast(size(g, n.outputs[0]), "float32"), g.cast(size(g, n.inputs[0]!), "float32"));
      return g.mul(expandReduced(g, n, dy), ratio);
    }),
  ],
  // y = max_axes x: dx = dy shared equally by the elements equal to the max (a subgradient at ties)
  ReduceMax: (g, n, [dy], needs) => [
    when(needs[0], () => {
      const x = n.inputs[0]!;
      const hits = g.cast(g.equal(x, expandReduced(g, n, n.outputs[0])), "float32");
      const count = g.op1("ReduceSum", [hits, n.inputs[1] ?? null], { attrs: { keepdims: attr.int(1) } });
      return g.mul(expandReduced(g, n, dy), g.div(hits, count));
    }),
  ],
  // y = softmax(x): dx = y·(dy - Σ_axis dy·y)
  Softmax: (g, n, [dy], needs, context) => {
    const y = n.outputs[0];
    const rowSum = () => attentionRowSum(g, n, context) ?? g.op1("ReduceSum", [g.mul(dy, y), g.constInt64([intAttr(n, "axis", -1)])], { attrs: { keepdims: attr.int(1) } });
    return [when(needs[0], () => g.mul(y, g.sub(dy, rowSum())))];
  },
  // y = log_softmax(x): dx = dy - e^y·Σ_axis dy
  LogSoftmax: (g, n, [dy], needs) => {
    const axis = g.constInt64([intAttr(n, "axis", -1)]);
    return [when(needs[0], () => g.sub(dy, g.mul(g.exp(n.outputs[0]), g.op1("ReduceSum", [dy, axis], { attrs: { keepdims: attr.int(1) } }))))];
  },

  // Reshape, Unsqueeze, Squeeze, Flatten: dx = reshape(dy, shape(x))
  Reshape: reshapeBack,
  Unsqueeze: reshapeBack,
  Squeeze: reshapeBack,
  Flatten: reshapeBack,
  // y = transpose(x, p): dx = transpose(dy, p⁻¹)
  Transpose: (g, n, [dy], needs) => {
    const perm = intsAttr(n, "perm");
    if (!perm) throw new Error("backward: Transpose needs an explicit perm");
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [when(needs[0], () => g.transpose(dy, inverse))];
  },
  // y = expand(x, s): dx = dy summed over the broadcast axes
  Expand: (g, n, [dy], needs) => [when(needs[0], () => sumTo(g, dy, n.inputs[0]!))],
  // y = tile(x, r): view dy as [r0, d0, r1, d1, ...] and sum the r axes
  Tile: (g, n, [dy], needs) => {
    const x = n.inputs[0]!;
    const repeats = constantInts(g, n.inputs[1], "Tile repeats");
    return [
      when(needs[0], () => {
        const xs = shape(g, x);
        const dims = repeats.flatMap((r, i) => [g.constInt64([r]), g.slice(xs, [i], [i + 1], [0])]);
        const split = g.op1("Reshape", [dy, g.concat(dims, 0)]);
        const axes = g.constInt64(repeats.map((_, i) => 2 * i));
        return g.op1("ReduceSum", [split, axes], { attrs: { keepdims: attr.int(0) }, shape: x.shape });
      }),
    ];
  },
  // y = concat(x₀, x₁, ..., axis): dxᵢ = the i-th piece of split(dy, sizes of the xᵢ, axis)
  Concat: (g, n, [dy], needs) => {
    if (!needs.some(Boolean)) return n.inputs.map(() => undefined);
    const axis = intAttr(n, "axis", 0);
    const sizes = g.concat(
      n.inputs.map((x) => g.gather(shape(g, x!), g.constInt64([axis]))),
      0,
    );
    const pieces = g.op("Split", [dy, sizes], { attrs: { axis: attr.int(axis) }, outputs: n.inputs.length });
    return pieces.map((p, i) => (needs[i] ? p : undefined));
  },
  // (y₀, y₁, ...) = split(x, axis): dx = concat(dy₀, dy₁, ..., axis)
  Split: (g, n, dys, needs) => [when(needs[0], () => g.concat(dys, intAttr(n, "axis", 0))), undefined],
  // y = x[starts:ends] (steps 1): dx = dy padded with zeros back to x's extent on the sliced axes
  Slice: (g, n, [dy], needs) => {
    if (!needs[0]) return [];
    const x = n.inputs[0]!;
    const starts = constantInts(g, n.inputs[1], "Slice starts");
    const ends = constantInts(g, n.inputs[2], "Slice ends");
    const axes = n.inputs[3] ? constantInts(g, n.inputs[3], "Slice axes") : starts.map((_, i) => i);
    const steps = n.inputs[4] ? constantInts(g, n.inputs[4], "Slice steps") : [];
    if (steps.some((s) => s !== 1)) throw new Error("backward: Slice with steps other than 1 is not supported");
    const xs = shape(g, x);
    const zero = g.constInt64([0]);
    const begins: Value[] = [];
    const afters: Value[] = [];
    axes.forEach((axis, i) => {
      const dim = g.gather(xs, g.constInt64([axis]));
      // ONNX clamping: negative bounds count from the end, then clamp to [0, dim]
      const bound = (v: number) => {
        const c = Math.max(Math.min(v, 2 ** 52), -(2 ** 52));
        const raw = c < 0 ? g.add(dim, g.constInt64([c])) : g.constInt64([c]);
        return g.op1("Min", [g.op1("Max", [raw, zero]), dim]);
      };
      const begin = bound(starts[i]);
      const end = g.op1("Max", [bound(ends[i]), begin]);
      begins.push(begin);
      afters.push(g.sub(dim, end));
    });
    const pads = g.concat([...begins, ...afters], 0);
    return [g.op1("Pad", [dy, pads, scalar(g, 0), g.constInt64(axes)], { shape: x.shape })];
  },
  // y = gather(data, indices, axis 0): ddata = zeros with dy scatter-added at the indices (repeats accumulate)
  Gather: (g, n, [dy], needs) => {
    if (!needs[0]) return [];
    if (intAttr(n, "axis", 0) !== 0) throw new Error("backward: Gather is supported on axis 0 only");
    const [data, indices] = n.inputs as Value[];
    const rows = g.gather(shape(g, data), g.constInt64([0], []));
    const wrapped = g.where(g.less(indices, g.constInt64([0], [])), g.add(indices, rows), indices);
    const at = g.unsqueeze(wrapped, [-1]);
    return [g.op1("ScatterND", [filledLike(g, data, 0), at, dy], { attrs: { reduction: attr.string("add") }, shape: data.shape })];
  },
  // y = where(c, a, b): da = dy where c, db = dy where not c (c carries none)
  Where: (g, n, [dy], needs) => {
    const [c, a, b] = n.inputs as Value[];
    const zero = scalar(g, 0);
    return [undefined, when(needs[1], () => sumTo(g, g.where(c, dy, zero), a)), when(needs[2], () => sumTo(g, g.where(c, zero, dy), b))];
  },
};

/** The rule of `node`'s op; an op without one is an error naming it. */
export function backwardRule(node: Node, rules: Readonly<Record<string, BackwardRule>> = BACKWARD_RULES): BackwardRule {
  const rule = node.domain === "" ? rules[node.op] : undefined;
  if (!rule) {
    const op = node.domain ? `${node.domain}.${node.op}` : node.op;
    throw new Error(`backward: no gradient rule for op ${op} (node ${node.name}), which lies between a trainable input and the loss`);
  }
  return rule;
}
