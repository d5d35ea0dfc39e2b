/**
 * A small typed graph IR for building ONNX models from TypeScript.
 *
 * A `Graph` holds values (typed tensors with a possibly symbolic shape), nodes (one ONNX op each,
 * in topological order, because every op is appended after its inputs exist), graph inputs and
 * outputs, and initializers (constant tensors: weights and small constants).
 *
 * Usage:
 *
 *   const g = new Graph("tiny");
 *   const x = g.input("x", "float32", ["batch", 4]);          // string dims are symbolic
 *   const w = g.initializer("w", "float32", [4, 3], weights); // Float32Array, row-major
 *   const y = g.add(g.matmul(x, w), g.constFloat([0.5]));
 *   g.output(g.relu(y), "y");
 *   const files = await writeOnnx(g, dir);                     // graph/onnx.ts: .onnx + .bin
 *
 * Ops without a helper go through `g.op(type, inputs, { attrs, domain, dtype, shape, outputs })`;
 * attributes are typed with the `attr.*` constructors (ONNX distinguishes ints from floats).
 * Shapes are best effort: helpers propagate them where it is cheap, otherwise `undefined`
 * (unknown); only dtypes are required, and graph outputs only need a dtype.
 *
 * The node list (`g.nodes`) is plain data in execution order, so later passes (LoRA branches,
 * reverse-mode differentiation) can walk and extend it.
 */

export type DType = "float32" | "float16" | "bfloat16" | "int64" | "int32" | "int8" | "uint8" | "bool";

/** A dimension: a fixed size, or a symbolic name shared between values ("batch", "seq"). */
export type Dim = number | string;

export interface Value {
  readonly id: number;
  /** Unique name in the emitted ONNX graph. */
  readonly name: string;
  readonly dtype: DType;
  /** Undefined when the shape is not known at build time. */
  readonly shape: Dim[] | undefined;
}

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

/**
 * A tensor's bytes where they lie in a file (row-major, little-endian), never read into memory: a
 * source weight served in place (services/model/compile-cache.ts). The emitter references it there
 * as ONNX external data, or reads it when asked to inline (graph/onnx.ts).
 */
export interface FileBytes {
  path: string;
  offset: number;
  byteLength: number;
}

export interface Tensor {
  dtype: DType;
  shape: number[];
  /** Row-major; float16/bfloat16 are raw bits in a Uint16Array, bool is a Uint8Array. */
  data: TensorData;
}

/** An initializer's tensor: in memory, or (weights served in place) in a file. */
export interface InitializerTensor {
  dtype: DType;
  shape: number[];
  data: TensorData | FileBytes;
}

export const isFileBytes = (data: TensorData | FileBytes): data is FileBytes => !ArrayBuffer.isView(data);

const BYTES_PER_ELEMENT: Record<DType, number> = { float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1 };

export type Attr =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "string"; value: string }
  | { kind: "ints"; value: number[] }
  | { kind: "floats"; value: number[] }
  | { kind: "tensor"; value: Tensor };

export const attr = {
  int: (value: number): Attr => ({ kind: "int", value }),
  float: (value: number): Attr => ({ kind: "float", value }),
  string: (value: string): Attr => ({ kind: "string", value }),
  ints: (value: number[]): Attr => ({ kind: "ints", value }),
  floats: (value: number[]): Attr => ({ kind: "floats", value }),
  tensor: (value: Tensor): Attr => ({ kind: "tensor", value }),
};

export interface Node {
  readonly op: string;
  /** "" for the standard ONNX domain, "com.microsoft" for onnxruntime contrib ops. */
  readonly domain: string;
  /** `null` marks an omitted optional input. */
  readonly inputs: (Value | null)[];
  readonly outputs: Value[];
  readonly attrs: Record<string, Attr>;
  readonly name: string;
}

export interface Initializer {
  value: Value;
  tensor: InitializerTensor;
}

export interface OpOptions {
  attrs?: Record<string, Attr>;
  domain?: string;
  /** Output dtype(s); defaults to the first input's dtype. */
  dtype?: DType | DType[];
  /** Output shape(s) if known. */
  shape?: Dim[] | (Dim[] | undefined)[];
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Base name for the outputs (made unique). */
  name?: string;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers: Initializer[] = [];
  private readonly usedNames = new Set<string>();
  private nextId = 0;

  constructor(readonly name = "graph") {}

  /** A new value with a unique name (`base`, `base_1`, ...). */
  value(base: string, dtype: DType, shape: Dim[] | undefined): Value {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return { id: this.nextId++, name, dtype, shape: shape ? [...shape] : undefined };
  }

  input(name: string, dtype: DType, shape: Dim[]): Value {
    if (this.usedNames.has(name)) throw new Error(`graph input name "${name}" is already used`);
    const v = this.value(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  /**
   * Marks `v` as a graph output named `name`. A node output is renamed in place (no copy); a graph
   * input or initializer, or a value that is already an output, goes through an Identity.
   */
  output(v: Value, name?: string): Value {
    if (name === undefined || name === v.name) {
      this.outputs.push(v);
      return v;
    }
    if (this.usedNames.has(name)) throw new Error(`graph output name "${name}" is already used`);
    const renamable = !this.inputs.includes(v) && !this.outputs.includes(v) && !this.initializers.some((i) => i.value === v);
    if (renamable) {
      this.usedNames.delete(v.name);
      this.usedNames.add(name);
      (v as { name: string }).name = name;
      this.outputs.push(v);
      return v;
    }
    const out = this.value(name, v.dtype, v.shape);
    this.nodes.push({ op: "Identity", domain: "", inputs: [v], outputs: [out], attrs: {}, name: `n${this.nodes.length}_Identity` });
    this.outputs.push(out);
    return out;
  }

  initializer(name: string, dtype: DType, shape: number[], data: TensorData | FileBytes): Value {
    const count = shape.reduce((a, b) => a * b, 1);
    const given = isFileBytes(data) ? data.byteLength / BYTES_PER_ELEMENT[dtype] : data.length;
    if (given !== count) {
      throw new Error(`initializer "${name}": shape [${shape}] needs ${count} elements, got ${given}`);
    }
    const v = this.value(name, dtype, shape);
    this.initializers.push({ value: v, tensor: { dtype, shape: [...shape], data } });
    return v;
  }

  /** Appends one node; returns its outputs. */
  op(op: string, inputs: (Value | null)[], options: OpOptions = {}): Value[] {
    const count = options.outputs ?? 1;
    const first = inputs.find((v): v is Value => v !== null);
    const dtypes = Array.isArray(options.dtype) ? options.dtype : undefined;
    const shapes = options.shape && isShapeList(options.shape) ? options.shape : undefined;
    const outputs: Value[] = [];
    for (let i = 0; i < count; i++) {
      const dtype = dtypes?.[i] ?? (typeof options.dtype === "string" ? options.dtype : undefined) ?? first?.dtype;
      if (!dtype) throw new Error(`${op}: output dtype unknown (no inputs); pass options.dtype`);
      const shape = shapes ? shapes[i] : i === 0 ? (options.shape as Dim[] | undefined) : undefined;
      outputs.push(this.value(options.name ?? op.toLowerCase(), dtype, shape));
    }
    this.nodes.push({
      op,
      domain: options.domain ?? "",
      inputs,
      outputs,
      attrs: options.attrs ?? {},
      name: `n${this.nodes.length}_${op}`,
    });
    return outputs;
  }

  /** Single-output shorthand for `op`. */
  op1(op: string, inputs: (Value | null)[], options: OpOptions = {}): Value {
    return this.op(op, inputs, options)[0];
  }

  // ---- constants ----

  constFloat(values: number[], shape: number[] = [values.length]): Value {
    return this.initializer("const_f", "float32", shape, Float32Array.from(values));
  }

  constInt64(values: number[], shape: number[] = [values.length]): Value {
    return this.initializer("const_i", "int64", shape, BigInt64Array.from(values.map(BigInt)));
  }

  // ---- elementwise ----

  add(a: Value, b: Value): Value {
    return this.op1("Add", [a, b], { shape: broadcast(a.shape, b.shape) });
  }
  sub(a: Value, b: Value): Value {
    return this.op1("Sub", [a, b], { shape: broadcast(a.shape, b.shape) });
  }
  mul(a: Value, b: Value): Value {
    return this.op1("Mul", [a, b], { shape: broadcast(a.shape, b.shape) });
  }
  div(a: Value, b: Value): Value {
    return this.op1("Div", [a, b], { shape: broadcast(a.shape, b.shape) });
  }
  pow(a: Value, b: Value): Value {
    return this.op1("Pow", [a, b], { shape: a.shape });
  }
  neg(x: Value): Value {
    return this.op1("Neg", [x], { shape: x.shape });
  }
  sqrt(x: Value): Value {
    return this.op1("Sqrt", [x], { shape: x.shape });
  }
  exp(x: Value): Value {
    return this.op1("Exp", [x], { shape: x.shape });
  }
  tanh(x: Value): Value {
    return this.op1("Tanh", [x], { shape: x.shape });
  }
  relu(x: Value): Value {
    return this.op1("Relu", [x], { shape: x.shape });
  }
  sigmoid(x: Value): Value {
    return this.op1("Sigmoid", [x], { shape: x.shape });
  }
  /** x * sigmoid(x). */
  silu(x: Value): Value {
    return this.mul(x, this.sigmoid(x));
  }
  cast(x: Value, to: DType): Value {
    return this.op1("Cast", [x], { attrs: { to: attr.int(onnxDataType(to)) }, dtype: to, shape: x.shape });
  }
  where(cond: Value, a: Value, b: Value): Value {
    return this.op1("Where", [cond, a, b], { dtype: a.dtype, shape: broadcast(cond.shape, broadcast(a.shape, b.shape)) });
  }
  equal(a: Value, b: Value): Value {
    return this.op1("Equal", [a, b], { dtype: "bool", shape: broadcast(a.shape, b.shape) });
  }
  less(a: Value, b: Value): Value {
    return this.op1("Less", [a, b], { dtype: "bool", shape: broadcast(a.shape, b.shape) });
  }

  // ---- linear algebra and reductions ----

  matmul(a: Value, b: Value): Value {
    return this.op1("MatMul", [a, b], { shape: matmulShape(a.shape, b.shape) });
  }
  /** Gemm-style y = x·w + bias with broadcasting (emitted as MatMul + Add). */
  linear(x: Value, w: Value, bias?: Value): Value {
    const y = this.matmul(x, w);
    return bias ? this.add(y, bias) : y;
  }
  softmax(x: Value, axis = -1): Value {
    return this.op1("Softmax", [x], { attrs: { axis: attr.int(axis) }, shape: x.shape });
  }
  reduceMean(x: Value, axes: number[], keepdims = true): Value {
    return this.op1("ReduceMean", [x, this.constInt64(axes)], { attrs: { keepdims: attr.int(keepdims ? 1 : 0) } });
  }
  reduceSum(x: Value, axes: number[], keepdims = true): Value {
    return this.op1("ReduceSum", [x, this.constInt64(axes)], { attrs: { keepdims: attr.int(keepdims ? 1 : 0) } });
  }

  // ---- shape ops ----

  reshape(x: Value, shape: number[]): Value {
    const known = shape.every((d) => d > 0) ? shape : undefined;
    return this.op1("Reshape", [x, this.constInt64(shape)], { shape: known });
  }
  transpose(x: Value, perm: number[]): Value {
    return this.op1("Transpose", [x], { attrs: { perm: attr.ints(perm) }, shape: x.shape && perm.map((p) => x.shape![p]) });
  }
  concat(values: Value[], axis: number): Value {
    return this.op1("Concat", values, { attrs: { axis: attr.int(axis) } });
  }
  /** Splits `x` along `axis` into pieces of the given sizes. */
  split(x: Value, sizes: number[], axis: number): Value[] {
    return this.op("Split", [x, this.constInt64(sizes)], { attrs: { axis: attr.int(axis) }, outputs: sizes.length });
  }
  slice(x: Value, starts: number[], ends: number[], axes: number[], steps?: number[]): Value {
    const inputs = [x, this.constInt64(starts), this.constInt64(ends), this.constInt64(axes)];
    if (steps) inputs.push(this.constInt64(steps));
    return this.op1("Slice", inputs);
  }
  gather(data: Value, indices: Value, axis = 0): Value {
    return this.op1("Gather", [data, indices], { attrs: { axis: attr.int(axis) }, dtype: data.dtype });
  }
  unsqueeze(x: Value, axes: number[]): Value {
    return this.op1("Unsqueeze", [x, this.constInt64(axes)]);
  }
  squeeze(x: Value, axes: number[]): Value {
    return this.op1("Squeeze", [x, this.constInt64(axes)]);
  }
  shapeOf(x: Value): Value {
    return this.op1("Shape", [x], { dtype: "int64", shape: x.shape ? [x.shape.length] : undefined });
  }
  expand(x: Value, shape: Value): Value {
    return this.op1("Expand", [x, shape]);
  }
}

function isShapeList(s: Dim[] | (Dim[] | undefined)[]): s is (Dim[] | undefined)[] {
  return s.length > 0 && (Array.isArray(s[0]) || s[0] === undefined);
}

/** Numpy-style broadcast of two known shapes; undefined when either is unknown or they clash. */
export function broadcast(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b) return undefined;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da === 1) out.push(db);
    else if (db === 1 || da === db) out.push(da);
    else return undefined;
  }
  return out;
}

/** The result shape of a (batched, broadcast) MatMul of two known shapes of rank ≥ 2. */
export function matmulShape(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b || a.length < 2 || b.length < 2) return undefined;
  const batch = broadcast(a.slice(0, -2), b.slice(0, -2));
  return batch ? [...batch, a[a.length - 2], b[b.length - 1]] : undefined;
}

/** ONNX TensorProto.DataType code for a dtype. */
export function onnxDataType(dtype: DType): number {
  const codes: Record<DType, number> = {
    float32: 1,
    uint8: 2,
    int8: 3,
    int32: 6,
    int64: 7,
    bool: 9,
    float16: 10,
    bfloat16: 16,
  };
  return codes[dtype];
}
