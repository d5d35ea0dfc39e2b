/**
 * The static shape pass (services/model/graph/shapes.ts) and what autodiff does with it:
 *   - on the training graph + loss of tiny models it infers every value's shape, and each one,
 *     with the symbolic dims substituted, is the shape the float64 reference evaluator computes;
 *   - symbolic arithmetic (products, exact division, Reshape with 0 and -1, shape tensors by value);
 *   - gradients with the pass (no-op broadcast reductions dropped) equal those without it up to float
 *     rounding (1e-5 of each tensor's largest element) on a tiny GQA model, from far fewer nodes;
 *   - a broadcast the pass cannot decide (two different symbolic dims) still differentiates correctly
 *     through the run-time reduction.
 */
import { describe, expect, it } from "vitest";
import { appendGradients } from "../../../../services/model/graph/autodiff.ts";
import { attr, Graph, type Dim, type Value } from "../../../../services/model/graph/ir.ts";
import { divDims, mulDims, ShapePass } from "../../../../services/model/graph/shapes.ts";
import { appendCausalLmLoss } from "../../../../services/model/llama/loss.ts";
import { buildTrainingGraph } from "../../../../services/model/llama/training-graph.ts";
import { expectClose } from "../../../helpers/compare.ts";
import { evaluate, refTensor, type RefTensor } from "../../../helpers/evaluate.ts";
import { runOrt } from "../../../helpers/gradients.ts";
import { randomArray, randomWeights, TINY_VARIANTS } from "../../../helpers/tiny-model.ts";

const B = 2;
const T = 5;
const RANK = 3;

/** A dim with the symbols bound: "2*seq" -> 2·T. */
function bind(d: Dim, sizes: Record<string, number>): number {
  if (typeof d === "number") return d;
  return d.split("*").reduce((p, part) => p * (/^\d+$/.test(part) ? Number(part) : sizes[part] ?? NaN), 1);
}

function trainingFeeds(g: Graph): Record<string, RefTensor> {
  const ints = (f: (b: number, t: number) => number) => refTensor([B, T], Array.from({ length: B * T }, (_, i) => f(Math.floor(i / T), i % T)));
  const feeds: Record<string, RefTensor> = {
    input_ids: ints((b, t) => 1 + ((7 * b + 3 * t) % 40)),
    position_ids: ints((b, t) => (b === 1 ? Math.max(0, t - 1) : t)),
    attention_mask: ints((b, t) => (b === 1 && t === 0 ? 0 : 1)),
    labels: ints((b, t) => (2 + 5 * b + t) % 40),
    loss_weights: ints((_, t) => (t > 0 ? 1 : 0)),
  };
  g.inputs
    .filter((v) => v.name.startsWith("lora."))
    .forEach((v, k) => {
      const shape = v.shape!.map((d) => (d === "lora_rank" ? RANK : (d as number)));
      feeds[v.name] = refTensor(shape, randomArray(shape[0] * shape[1], 40 + k, 0.3));
    });
  return feeds;
}

function lossGraph(name: keyof typeof TINY_VARIANTS) {
  const config = TINY_VARIANTS[name];
  const g = buildTrainingGraph(config, randomWeights(config, 5));
  const { loss } = appendCausalLmLoss(g, g.outputs.find((v) => v.name === "logits")!);
  return { g, loss, lora: g.inputs.filter((v) => v.name.startsWith("lora.")) };
}

describe("symbolic dims", () => {
  it("multiply and divide as monomials", () => {
    expect(mulDims("seq", 2)).toBe("2*seq");
    expect(mulDims("seq", "batch")).toBe("batch*seq");
    expect(mulDims(mulDims("batch", 3), mulDims("seq", 4))).toBe("12*batch*seq");
    expect(divDims("12*batch*seq", 4)).toBe("3*batch*seq");
    expect(divDims("12*batch*seq", "3*batch")).toBe("4*seq");
    expect(divDims("2*seq", "batch")).toBeUndefined();
    expect(divDims("2*seq", 4)).toBeUndefined();
    expect(divDims(12, 4)).toBe(3);
  });

  it("resolve Reshape with 0 and -1, and a Reshape to a shape computed at run time", () => {
    const g = new Graph("reshape");
    const x = g.input("x", "float32", ["batch", "seq", 6, 4]);
    const grouped = g.reshape(x, [0, 2, -1, 4]);
    const back = g.op1("Reshape", [grouped, g.shapeOf(x)]);
    const cols = g.op1("Reshape", [x, g.concat([g.constInt64([-1]), g.slice(g.shapeOf(x), [3], [4], [0])], 0)]);
    const range = g.op1("Range", [g.constInt64([0], []), g.gather(g.shapeOf(x), g.constInt64([1], [])), g.constInt64([1], [])]);
    const reduced = g.op1("ReduceSum", [x, g.constInt64([1, -1])], { attrs: { keepdims: attr.int(0) } });
    new ShapePass(g).run();
    expect(grouped.shape).toEqual(["batch", 2, "3*seq", 4]);
    expect(back.shape).toEqual(["batch", "seq", 6, 4]);
    expect(cols.shape).toEqual(["6*batch*seq", 4]);
    expect(range.shape).toEqual(["seq"]);
    expect(reduced.shape).toEqual(["batch", 6]);
  });
});

describe.each(Object.keys(TINY_VARIANTS) as (keyof typeof TINY_VARIANTS)[])("the shape pass on the training graph (%s)", (name) => {
  it("infers every value's shape, and each is the shape the reference evaluator computes", () => {
    const { g } = lossGraph(name);
    new ShapePass(g).run();
    const values = g.nodes.flatMap((n) => n.outputs);
    expect(values.filter((v) => !v.shape).map((v) => v.name)).toEqual([]);
    const computed = evaluate(g, trainingFeeds(g), values);
    const sizes = { batch: B, seq: T, lora_rank: RANK };
    values.forEach((v, i) => expect(v.shape!.map((d) => bind(d, sizes)), v.name).toEqual(computed[i].shape));
  });
});

describe("gradients with static shapes", () => {
  it("equal the gradients with every broadcast reduction at run time, from far fewer nodes", async () => {
    const name = "llama untied GQA, odd sizes";
    const [withPass, without] = [true, false].map((staticShapes) => {
      const { g, loss, lora } = lossGraph(name);
      const forward = g.nodes.length;
      const grads = appendGradients(g, loss, lora, { staticShapes });
      const reductions = g.nodes.slice(forward).filter((n) => n.op === "ReduceSum").length;
      return { g, grads, backward: g.nodes.length - forward, reductions };
    });
    expect(withPass.backward).toBeLessThan(0.6 * without.backward);
    expect(withPass.reductions).toBeLessThan(without.reductions / 4);
    const feeds = trainingFeeds(withPass.g);
    const names = withPass.grads.map((v) => v.name);
    const [a, b] = [await runOrt(withPass.g, feeds, ["loss", ...names]), await runOrt(without.g, feeds, ["loss", ...names])];
    expectClose(a.loss, b.loss, 1e-7, "loss");
    for (const n of names) {
      const scale = Math.max(1e-6, ...Array.from(b[n], Math.abs));
      expectClose(a[n], b[n], 1e-5 * scale, n);
    }
    console.log(`static shapes: backward ${without.backward} -> ${withPass.backward} nodes, ReduceSum ${without.reductions} -> ${withPass.reductions}`);
  });

  it("sum a broadcast the pass cannot decide at run time (different symbolic dims)", async () => {
    const g = new Graph("undecided");
    const a = g.input("a", "float32", ["m", 3]);
    const b = g.input("b", "float32", ["n", 3]);
    const y: Value = g.mul(g.add(a, b), g.constFloat([1, 2, 3], [3]));
    const loss = g.op1("ReduceSum", [g.mul(y, y)], { attrs: { keepdims: attr.int(0) }, shape: [] });
    const [da, db] = appendGradients(g, loss, [a, b]);
    const A = [0.5, -1, 2, 1, 0, -0.5, 0.25, 0.75, -2, 1.5, 1, 0];
    const Bv = [1, -0.5, 0.25];
    const out = await runOrt(g, { a: refTensor([4, 3], A), b: refTensor([1, 3], Bv) }, [da.name, db.name]);
    // y = (a + b)·w, loss = Σ y²: da = 2·y·w, db = Σ_rows 2·y·w
    const w = [1, 2, 3];
    const expectedA = A.map((v, i) => 2 * (v + Bv[i % 3]) * w[i % 3] * w[i % 3]);
    const expectedB = [0, 1, 2].map((j) => [0, 1, 2, 3].reduce((s, r) => s + expectedA[3 * r + j], 0));
    expectClose(out[da.name], expectedA, 1e-6, "da");
    expectClose(out[db.name], expectedB, 1e-6, "db");
  });
});
