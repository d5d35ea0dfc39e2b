/**
 * Each backward rule alone: a tiny graph around one op (or one composite of the Llama math), the
 * loss Σ out·R for a fixed random R, analytic gradients from one onnxruntime session (float32) vs
 * central finite differences of the float64 reference evaluator. Tolerance: max |analytic − FD|
 * below 1e-4·max(1, max |FD|) per input.
 */
import { afterAll, describe, expect, it } from "vitest";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import { BACKWARD_RULES, type BackwardRule } from "../../../../services/model/graph/backward-rules.ts";
import { attr, Graph, type Value } from "../../../../services/model/graph/ir.ts";
import { attend } from "../../../../services/model/llama/attention.ts";
import { rmsNorm } from "../../../../services/model/llama/norm.ts";
import { rotaryEmbedding } from "../../../../services/model/llama/rope.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { evaluate, refTensor, type RefTensor } from "../../../helpers/evaluate.ts";
import { finiteDifferences, maxOf, runOrt } from "../../../helpers/gradients.ts";
import { randomArray } from "../../../helpers/tiny-model.ts";

interface Input {
  name: string;
  shape: number[];
  /** Values: random in [-1, 1) + offset unless given. */
  offset?: number;
  data?: number[];
  dtype?: "float32" | "int64" | "bool";
  /** Differentiate with respect to it (default: float inputs). */
  trainable?: boolean;
}

interface Case {
  name: string;
  inputs: Input[];
  build: (g: Graph, x: Record<string, Value>) => Value;
}

const TOLERANCE = 1e-4;
/** Worst |analytic − FD| / max(1, max |FD|) of each case, printed once for the record. */
const worstRelative: [string, number][] = [];
afterAll(() => {
  const [name, worst] = worstRelative.reduce((m, e) => (e[1] > m[1] ? e : m), ["none", 0]);
  console.log(`backward rules: ${worstRelative.length} checks, worst scaled error ${worst.toExponential(2)} (${name})`);
});

/** Builds the case, appends Σ out·R and the gradients; returns the worst error per trainable input. */
async function check(c: Case, rules?: Record<string, BackwardRule>): Promise<Record<string, number>> {
  const g = new Graph(c.name);
  const values: Record<string, Value> = {};
  const feeds: Record<string, RefTensor> = {};
  c.inputs.forEach((inp, k) => {
    const dtype = inp.dtype ?? "float32";
    values[inp.name] = g.input(inp.name, dtype, inp.shape);
    const n = inp.shape.reduce((a, b) => a * b, 1);
    const data = inp.data ?? Array.from(randomArray(n, 17 + 31 * k, 1), (v) => v + (inp.offset ?? 0));
    feeds[inp.name] = refTensor(inp.shape, data);
  });
  const out = c.build(g, values);
  const [forward] = evaluate(g, feeds, [out]);
  const weight = g.initializer("loss_weight", "float32", forward.shape, randomArray(forward.data.length, 5, 1));
  const loss = g.op1("ReduceSum", [g.mul(out, weight)], { attrs: { keepdims: attr.int(0) }, shape: [] });
  const trainable = c.inputs.filter((i) => (i.trainable ?? (i.dtype ?? "float32") === "float32")).map((i) => values[i.name]);
  const grads = appendGradients(g, loss, trainable, { rules });
  const analytic = await runOrt(g, feeds, grads.map((v) => v.name));
  const worst: Record<string, number> = {};
  trainable.forEach((v, k) => {
    const fd = finiteDifferences(g, loss, feeds, v.name);
    const tol = TOLERANCE * Math.max(1, maxOf(fd));
    if (rules) worst[v.name] = maxAbs(analytic[grads[k].name], fd) / tol;
    else {
      worst[v.name] = expectClose(analytic[grads[k].name], fd, tol, `${c.name}: d/d${v.name}`);
      worstRelative.push([`${c.name} d/d${v.name}`, worst[v.name] / Math.max(1, maxOf(fd))]);
    }
  });
  return worst;
}

/** Max |a − b|; Infinity when the lengths differ (a gradient of the wrong shape). */
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length !== b.length ? Infinity : Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const f = (name: string, shape: number[], extra: Partial<Input> = {}): Input => ({ name, shape, ...extra });

const CASES: Case[] = [
  { name: "Add, same shape", inputs: [f("a", [2, 3]), f("b", [2, 3])], build: (g, x) => g.add(x.a, x.b) },
  { name: "Add, broadcast trailing", inputs: [f("a", [2, 3, 4]), f("b", [4])], build: (g, x) => g.add(x.a, x.b) },
  { name: "Add, broadcast both ways", inputs: [f("a", [2, 1, 4]), f("b", [3, 1])], build: (g, x) => g.add(x.a, x.b) },
  { name: "Sub, broadcast", inputs: [f("a", [2, 3]), f("b", [2, 1])], build: (g, x) => g.sub(x.a, x.b) },
  { name: "Mul, broadcast", inputs: [f("a", [2, 3, 4]), f("b", [3, 1])], build: (g, x) => g.mul(x.a, x.b) },
  { name: "Mul, same value twice", inputs: [f("a", [3, 4])], build: (g, x) => g.mul(x.a, x.a) },
  { name: "Div, broadcast", inputs: [f("a", [2, 3]), f("b", [3], { offset: 2 })], build: (g, x) => g.div(x.a, x.b) },
  { name: "Neg", inputs: [f("a", [5])], build: (g, x) => g.neg(x.a) },
  { name: "Pow, constant exponent", inputs: [f("a", [2, 3], { offset: 2 })], build: (g, x) => g.pow(x.a, g.constFloat([3], [])) },
  { name: "Pow, both", inputs: [f("a", [2, 3], { offset: 2 }), f("b", [3])], build: (g, x) => g.op1("Pow", [x.a, x.b]) },
  { name: "Sqrt", inputs: [f("a", [2, 3], { offset: 2 })], build: (g, x) => g.sqrt(x.a) },
  { name: "Reciprocal", inputs: [f("a", [2, 3], { offset: 2 })], build: (g, x) => g.op1("Reciprocal", [x.a]) },
  { name: "Exp", inputs: [f("a", [2, 3])], build: (g, x) => g.exp(x.a) },
  { name: "Log", inputs: [f("a", [2, 3], { offset: 2 })], build: (g, x) => g.op1("Log", [x.a]) },
  { name: "Tanh", inputs: [f("a", [2, 3])], build: (g, x) => g.tanh(x.a) },
  { name: "Sigmoid", inputs: [f("a", [2, 3])], build: (g, x) => g.sigmoid(x.a) },
  { name: "SiLU (Mul + Sigmoid)", inputs: [f("a", [2, 5])], build: (g, x) => g.silu(x.a) },
  { name: "Relu", inputs: [f("a", [6], { data: [-0.9, -0.3, 0.2, 0.5, 0.8, -0.6] })], build: (g, x) => g.relu(x.a) },
  { name: "Identity and Cast float32", inputs: [f("a", [4])], build: (g, x) => g.cast(g.op1("Identity", [x.a]), "float32") },
  { name: "MatMul 3-D by 2-D", inputs: [f("a", [2, 3, 4]), f("b", [4, 5])], build: (g, x) => g.matmul(x.a, x.b) },
  { name: "MatMul 2-D by 3-D", inputs: [f("a", [3, 4]), f("b", [2, 4, 5])], build: (g, x) => g.matmul(x.a, x.b) },
  { name: "MatMul batched, broadcast batch", inputs: [f("a", [2, 1, 3, 4]), f("b", [3, 4, 2])], build: (g, x) => g.matmul(x.a, x.b) },
  { name: "ReduceMean last axis, keepdims", inputs: [f("a", [2, 3, 4])], build: (g, x) => g.reduceMean(x.a, [-1]) },
  { name: "ReduceSum two axes, no keepdims", inputs: [f("a", [2, 3, 4])], build: (g, x) => g.reduceSum(x.a, [0, 2], false) },
  { name: "ReduceSum all axes", inputs: [f("a", [2, 3])], build: (g, x) => g.op1("ReduceSum", [x.a], { attrs: { keepdims: attr.int(0) } }) },
  { name: "ReduceMax", inputs: [f("a", [3, 4])], build: (g, x) => g.op1("ReduceMax", [x.a, g.constInt64([-1])], { attrs: { keepdims: attr.int(0) } }) },
  { name: "Softmax last axis", inputs: [f("a", [2, 3, 5])], build: (g, x) => g.softmax(x.a) },
  { name: "Softmax middle axis", inputs: [f("a", [2, 3, 5])], build: (g, x) => g.softmax(x.a, 1) },
  { name: "LogSoftmax", inputs: [f("a", [2, 5])], build: (g, x) => g.op1("LogSoftmax", [x.a], { attrs: { axis: attr.int(-1) } }) },
  { name: "Reshape with 0 and -1", inputs: [f("a", [2, 3, 4])], build: (g, x) => g.reshape(x.a, [0, -1]) },
  { name: "Transpose", inputs: [f("a", [2, 3, 4])], build: (g, x) => g.transpose(x.a, [2, 0, 1]) },
  { name: "Unsqueeze, Squeeze", inputs: [f("a", [2, 3])], build: (g, x) => g.squeeze(g.mul(g.unsqueeze(x.a, [1]), g.constFloat([2, 3], [2, 1, 1])), [1]) },
  { name: "Expand", inputs: [f("a", [3, 1])], build: (g, x) => g.expand(x.a, g.constInt64([2, 3, 4])) },
  { name: "Tile", inputs: [f("a", [2, 3, 1])], build: (g, x) => g.op1("Tile", [x.a, g.constInt64([1, 2, 3])]) },
  { name: "Concat", inputs: [f("a", [2, 3]), f("b", [2, 2])], build: (g, x) => g.concat([x.a, x.b, x.a], 1) },
  { name: "Split, one piece unused", inputs: [f("a", [2, 7])], build: (g, x) => g.split(x.a, [3, 4], -1)[1] },
  { name: "Split, both pieces", inputs: [f("a", [2, 7])], build: (g, x) => { const [p, q] = g.split(x.a, [3, 4], 1); return g.matmul(g.transpose(p, [1, 0]), q); } },
  { name: "Slice, negative start and clamped end", inputs: [f("a", [3, 6])], build: (g, x) => g.slice(x.a, [1, -4], [99, -1], [0, 1]) },
  {
    name: "Gather axis 0, repeated and negative indices",
    inputs: [f("table", [5, 3]), f("ids", [2, 3], { dtype: "int64", data: [0, 4, 4, -1, 2, 0] })],
    build: (g, x) => g.gather(x.table, x.ids),
  },
  {
    name: "Where with a bool mask, broadcast branches",
    inputs: [f("a", [2, 3]), f("b", [3]), f("cond", [2, 3], { dtype: "bool", data: [1, 0, 1, 0, 0, 1] })],
    build: (g, x) => g.where(x.cond, x.a, x.b),
  },
  { name: "int paths carry no gradient (Shape, Gather, Range, Cast, Equal)", inputs: [f("a", [2, 4])], build: (g, x) => {
      const n = g.gather(g.shapeOf(x.a), g.constInt64([1], []));
      const iota = g.cast(g.op1("Range", [g.constInt64([0], []), n, g.constInt64([1], [])]), "float32");
      return g.mul(x.a, g.where(g.equal(g.cast(iota, "int64"), g.constInt64([2], [])), iota, g.constFloat([1], [])));
    } },
  // composites of the Llama math (fused: false)
  {
    name: "RMSNorm (elementary ops)",
    inputs: [f("x", [2, 3, 6]), f("w", [6], { offset: 1 })],
    build: (g, x) => rmsNorm(g, x.x, x.w, 1e-5, false),
  },
  {
    name: "RoPE (rotate-half by a MatMul, gathered tables)",
    inputs: [f("x", [2, 3, 2, 4]), f("pos", [2, 3], { dtype: "int64", data: [0, 1, 2, 5, 6, 7] })],
    build: (g, x) => rotaryEmbedding(g, { headDim: 4, ropeTheta: 10000, maxPositionEmbeddings: 16 }, x.pos, false).apply(x.x, "bsnh"),
  },
  {
    name: "attention core (scores, bias, softmax, values; GQA layout)",
    inputs: [f("q", [1, 2, 6, 4]), f("k", [1, 2, 3, 4]), f("v", [1, 2, 3, 4]), f("bias", [1, 1, 6, 3], { trainable: false })],
    build: (g, x) => attend(g, { numHeads: 4, numKvHeads: 2, headDim: 4 }, x.q, x.k, x.v, x.bias, false),
  },
];

describe("backward rules vs central finite differences (float64 reference)", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const worst = await check(c);
    expect(Object.keys(worst).length).toBeGreaterThan(0);
  });

  it("covers every rule in the table by some case", () => {
    const used = new Set<string>();
    for (const c of CASES) {
      const g = new Graph();
      const values = Object.fromEntries(c.inputs.map((i) => [i.name, g.input(i.name, i.dtype ?? "float32", i.shape)]));
      c.build(g, values);
      for (const n of g.nodes) used.add(n.op);
    }
    expect(Object.keys(BACKWARD_RULES).filter((op) => !used.has(op) && op !== "Flatten")).toEqual([]);
  });
});

describe("the checks can fail", () => {
  it("catches a wrong Sigmoid rule (dy·y, missing the 1 − y factor) through SiLU", async () => {
    const wrong: BackwardRule = (g, n, [dy]) => [g.mul(dy, n.outputs[0])];
    const ratio = await check(CASES.find((c) => c.name.startsWith("SiLU"))!, { ...BACKWARD_RULES, Sigmoid: wrong });
    expect(ratio.a).toBeGreaterThan(1); // error above the tolerance
  });

  it("catches a Softmax rule that forgets the Σ dy·y term", async () => {
    const wrong: BackwardRule = (g, n, [dy]) => [g.mul(n.outputs[0], dy)];
    const ratio = await check(CASES.find((c) => c.name === "Softmax last axis")!, { ...BACKWARD_RULES, Softmax: wrong });
    expect(ratio.a).toBeGreaterThan(1);
  });

  it("catches a broadcast gradient that is not summed back", async () => {
    const wrong: BackwardRule = (_g, _n, [dy]) => [dy, dy];
    const ratio = await check(CASES.find((c) => c.name === "Add, broadcast trailing")!, { ...BACKWARD_RULES, Add: wrong });
    expect(ratio.b).toBeGreaterThan(1); // d/db has a's shape [2, 3, 4] instead of [4]
  });
});

describe("the pass", () => {
  it("names an op without a rule on the path from a trainable input", () => {
    const g = new Graph();
    const a = g.input("a", "float32", [3]);
    const loss = g.op1("ReduceSum", [g.op1("Erf", [a])], { attrs: { keepdims: attr.int(0) }, shape: [] });
    expect(() => appendGradients(g, loss, [a])).toThrow(/no gradient rule for op Erf/);
  });

  it("needs no rule off the path, and gives an unused trainable input zeros", async () => {
    const g = new Graph();
    const a = g.input("a", "float32", [3]);
    const unused = g.input("unused", "float32", [2]);
    const c = g.input("c", "float32", [3]);
    const loss = g.op1("ReduceSum", [g.mul(a, g.op1("Erf", [c]))], { attrs: { keepdims: attr.int(0) }, shape: [] });
    const nodes = g.nodes.length;
    const [da, du] = appendGradients(g, loss, [a, unused]);
    expect(g.nodes.slice(nodes).some((n) => n.op === "Erf")).toBe(false);
    expect([da.name, du.name]).toEqual(["grad.a", "grad.unused"]);
    const feeds = { a: refTensor([3], [1, 2, 3]), unused: refTensor([2], [5, 6]), c: refTensor([3], [0.1, 0.2, 0.3]) };
    const out = await runOrt(g, feeds, ["grad.a", "grad.unused"]);
    expect(Array.from(out["grad.unused"])).toEqual([0, 0]);
    expectClose(out["grad.a"], [0.1, 0.2, 0.3].map(erf), 1e-4, "d/da = erf(c)");
  });

  it("sums attention's softmax backward over the context rows (Σ do·o), not over the probabilities (FD: the attention core case)", () => {
    const g = new Graph();
    const [q, k, v] = ["q", "k", "v"].map((name, i) => g.input(name, "float32", [1, 2, i === 0 ? 6 : 5, 4]));
    const bias = g.input("bias", "float32", [1, 1, 6, 5]);
    const context = attend(g, { numHeads: 4, numKvHeads: 2, headDim: 4 }, q, k, v, bias, false);
    const loss = g.op1("ReduceSum", [g.mul(context, context)], { attrs: { keepdims: attr.int(0) }, shape: [] });
    const forward = g.nodes.length;
    appendGradients(g, loss, [q, k, v]);
    const reduced = g.nodes.slice(forward).filter((n) => n.op === "ReduceSum").map((n) => n.inputs[0]!.shape);
    expect(reduced).toContainEqual([1, 2, 6, 4]);
    expect(reduced).not.toContainEqual([1, 2, 6, 5]);
  });

  it("rejects a loss that is not a scalar or does not depend on the trainable inputs", () => {
    const g = new Graph();
    const a = g.input("a", "float32", [3]);
    const b = g.input("b", "float32", [3]);
    expect(() => appendGradients(g, g.mul(a, a), [a])).toThrow(/scalar/);
    expect(() => appendGradients(g, g.op1("ReduceSum", [b], { attrs: { keepdims: attr.int(0) }, shape: [] }), [a])).toThrow(/does not depend/);
  });
});

/** Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}
