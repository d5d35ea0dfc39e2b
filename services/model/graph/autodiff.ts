/**
 * Reverse-mode differentiation of a graph IR (./ir.ts): appends the backward nodes of a scalar loss
 * with respect to trainable graph inputs, so one ONNX session runs forward and backward together.
 *
 *   const [dA, dB] = appendGradients(g, loss, [a, b]);   // graph outputs "grad.<input name>"
 *
 * How: walk the forward nodes in reverse topological order (the node list is in execution order),
 * apply each op's backward rule (./backward-rules.ts), and sum the gradients of a value used more
 * than once. Only values on a path from a trainable input to the loss get a gradient: a value is
 * "differentiable" when it is float and computed from a trainable input, and "needed" when the loss
 * also depends on it; nodes outside that set emit nothing and need no rule (int index paths,
 * masks, shapes, constant tables). A trainable input the loss does not depend on gets zeros.
 *
 * Before the walk the shape pass (./shapes.ts) fills in the forward values' unknown static shapes,
 * and again after each rule, so a rule can tell at build time when a broadcast reduction is a no-op.
 *
 * Invariants: the forward nodes and outputs are left as they are (nodes are only appended, shapes
 * only filled in where unknown); the
 * returned gradients have the shapes of their inputs; the loss must be a float scalar.
 */
import { BACKWARD_RULES, backwardRule, filledLike, type BackwardContext, type BackwardRule } from "./backward-rules.ts";
import type { Graph, Node, Value } from "./ir.ts";
import { ShapePass } from "./shapes.ts";

export interface GradientOptions {
  /** Rules by op type (default BACKWARD_RULES); tests swap one to see a wrong rule caught. */
  rules?: Readonly<Record<string, BackwardRule>>;
  /** Graph output name of each gradient (default `grad.<input name>`); `false` adds no outputs. */
  outputName?: ((input: Value) => string) | false;
  /** Run the static shape pass (default true); `false` keeps every broadcast reduction at run time (tests compare the two). */
  staticShapes?: boolean;
}

const isFloat = (v: Value) => v.dtype === "float32" || v.dtype === "float16" || v.dtype === "bfloat16";

/** Appends d(loss)/d(input) for each of `wrt` (graph inputs or initializers) and returns them in order. */
export function appendGradients(g: Graph, loss: Value, wrt: readonly Value[], options: GradientOptions = {}): Value[] {
  if (!isFloat(loss)) throw new Error(`autodiff: the loss "${loss.name}" must be float, not ${loss.dtype}`);
  if (loss.shape && loss.shape.length !== 0) throw new Error(`autodiff: the loss "${loss.name}" must be a scalar, has shape [${loss.shape}]`);
  for (const v of wrt) if (!isFloat(v)) throw new Error(`autodiff: trainable "${v.name}" must be float, not ${v.dtype}`);
  const forward = g.nodes.slice(); // the nodes to differentiate; rules append after them
  // Static shapes let the rules skip no-op broadcast reductions; kept up to date as rules append nodes.
  const shapes = options.staticShapes === false ? { run: () => {} } : new ShapePass(g);
  shapes.run();

  // Differentiable: float values computed from a trainable input.
  const differentiable = new Set<Value>(wrt);
  for (const node of forward) {
    if (node.inputs.some((v) => v !== null && differentiable.has(v))) for (const out of node.outputs) if (isFloat(out)) differentiable.add(out);
  }
  if (!differentiable.has(loss)) throw new Error(`autodiff: the loss "${loss.name}" does not depend on any trainable input`);

  // Needed: differentiable values the loss depends on.
  const needed = new Set<Value>([loss]);
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    if (!node.outputs.some((v) => needed.has(v))) continue;
    for (const v of node.inputs) if (v !== null && differentiable.has(v)) needed.add(v);
  }

  // Gradient contributions per value, summed when read.
  const parts = new Map<Value, Value[]>();
  const contribute = (v: Value, grad: Value) => (parts.get(v) ?? parts.set(v, []).get(v)!).push(grad);
  const total = (v: Value): Value | undefined => {
    const list = parts.get(v);
    if (!list || list.length === 0) return undefined;
    const sum = list.reduce((acc, p) => g.add(acc, p));
    parts.set(v, [sum]);
    return sum;
  };
  contribute(loss, filledLike(g, loss, 1));
  const readers = new Map<Value, Node[]>();
  for (const node of forward) for (const v of node.inputs) if (v) (readers.get(v) ?? readers.set(v, []).get(v)!).push(node);
  // In reverse order every reader of a node's inputs and outputs has been visited, so totals are complete.
  const context: BackwardContext = { consumers: (v) => readers.get(v) ?? [], gradient: total };

  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    if (!node.outputs.some((v) => needed.has(v) && parts.has(v))) continue;
    const needs = node.inputs.map((v) => v !== null && needed.has(v));
    if (!needs.some(Boolean)) continue;
    const dys = node.outputs.map((out) => total(out) ?? filledLike(g, out, 0));
    shapes.run();
    const grads = backwardRule(node, options.rules ?? BACKWARD_RULES)(g, node, dys, needs, context);
    node.inputs.forEach((v, k) => {
      const grad = grads[k];
      if (v !== null && needs[k] && grad) contribute(v, grad);
    });
  }

  shapes.run();

  const names = options.outputName ?? ((v: Value) => `grad.${v.name}`);
  return wrt.map((v) => {
    const grad = total(v) ?? filledLike(g, v, 0);
    return names === false ? grad : g.output(grad, names(v));
  });
}
