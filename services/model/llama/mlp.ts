/** The SwiGLU MLP of a Llama-family layer: down(silu(gate(x)) · up(x)). Standard ONNX ops only. */
import type { Graph, Value } from "../graph/ir.ts";
import type { LayerLinear } from "./projection.ts";

export function swiGluMlp(g: Graph, linear: LayerLinear, x: Value, intermediateSize: number): Value {
  const gateUp = linear(x, ["gate_proj", "up_proj"], false);
  const [gate, up] = g.split(gateUp, [intermediateSize, intermediateSize], -1);
  return linear(g.mul(g.silu(gate), up), ["down_proj"], false);
}
