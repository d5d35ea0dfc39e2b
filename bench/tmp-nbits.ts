import * as ort from "onnxruntime-node";
import { Graph, attr } from "../services/model/graph/ir.ts";
import { emitOnnx } from "../services/model/graph/onnx.ts";
const K = 2048, N = 11264;
const rnd = (n: number) => { const a = new Uint8Array(n); for (let i = 0; i < n; i++) a[i] = (i * 2654435761) >>> 24; return a; };
async function session(build: (g: Graph, x: ReturnType<Graph["input"]>) => ReturnType<Graph["input"]>) {
  const g = new Graph("t");
  const x = g.input("x", "float32", ["m", K]);
  g.output(build(g, x), "y");
  return ort.InferenceSession.create(emitOnnx(g).model, { intraOpNumThreads: 1, graphOptimizationLevel: "all" });
}
const nbits = (bits: number, block: number, acc: number) => session((g, x) => {
  const blocks = K / block;
  const b = g.initializer("b", "uint8", [N, blocks, (block * bits) / 8], rnd(N * blocks * (block * bits) / 8));
  const s = g.initializer("s", "float32", [N * blocks], new Float32Array(N * blocks).fill(0.01));
  return g.op1("MatMulNBits", [x, b, s], { domain: "com.microsoft", attrs: { K: attr.int(K), N: attr.int(N), bits: attr.int(bits), block_size: attr.int(block), accuracy_level: attr.int(acc) }, dtype: "float32" });
});
const dqmm = (signed: boolean) => session((g, x) => {
  const w = g.initializer("w", signed ? "int8" : "uint8", [K, N], signed ? new Int8Array(rnd(K * N).buffer) : rnd(K * N));
  const s = g.initializer("s", "float32", [N], new Float32Array(N).fill(0.01));
  const z = signed ? g.initializer("z", "int8", [N], new Int8Array(N)) : g.initializer("z", "uint8", [N], new Uint8Array(N).fill(128));
  return g.op1("DynamicQuantizeMatMul", [x, w, s, z, null], { domain: "com.microsoft", dtype: "float32" });
});
const cases: [string, Promise<ort.InferenceSession>][] = [["dqmm u8", dqmm(false)], ["dqmm s8", dqmm(true)], ["nbits8 b32 acc4", nbits(8, 32, 4)], ["nbits8 b128 acc4", nbits(8, 128, 4)], ["nbits4 b32 acc4", nbits(4, 32, 4)]];
for (const m of [1, 32]) {
  const x = new ort.Tensor("float32", new Float32Array(m * K).map((_, i) => Math.sin(i)), [m, K]);
  for (const [name, p] of cases) {
    const s = await p;
    for (let i = 0; i < 10; i++) await s.run({ x });
    const t = performance.now();
    const n = m === 1 ? 100 : 30;
    for (let i = 0; i < n; i++) await s.run({ x });
    console.log(`M=${m} ${name}: ${((performance.now() - t) / n).toFixed(2)} ms`);
  }
}
