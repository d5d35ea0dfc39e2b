/**
 * LoRA branches for `layerLinear`: the delta x·A·B of each adapted projection, as graph inputs
 * named by `loraInputName` (services/model/lora-layout.ts). Standard ONNX ops only.
 *
 * `segmentedLora` serves many adapters held in slots, the way Punica's and S-LoRA's segmented
 * kernels do (SGMV): the token rows that share a slot are gathered into one segment and multiplied
 * by that slot's matrices, so each adapter's weights are read once per step and never copied.
 *   lora.{i}.{t}.a  float [slots, in, rank]   A^T per slot
 *   lora.{i}.{t}.b  float [slots, rank, out]  (scale·B)^T per slot
 *   gather          int64 [slots, rows]       each slot's segment: indices into the B·T token rows
 *   scatter         int64 [B, T]              each token's row in the segments' output; slots·rows = none
 * `singleLora` applies one adapter to every token (a training graph's trainable inputs):
 *   lora.{i}.{t}.a  float [in, rank], lora.{i}.{t}.b  float [rank, out]
 * and, for the targets given as `dropout`, PEFT's LoRA dropout on the branch alone,
 * b(a(dropout(x))): x times a mask input (0 or 1/(1-p) per element, drawn by the trainer)
 *   lora.{i}.{t}.dropout  float [B, T, in]
 * The base projection always sees x itself.
 */
import type { Graph, Value } from "../graph/ir.ts";
import { loraDropoutName, loraInputName, type LoraTarget } from "../lora-layout.ts";
import type { LoraBranch } from "./projection.ts";

export interface LoraSegments {
  gather: Value;
  scatter: Value;
}

/** Gathers each slot's rows of x into a segment, two batched products per target, scatters back. */
export function segmentedLora(g: Graph, { gather, scatter }: LoraSegments): LoraBranch {
  return (layer, x, targets, shapes) => {
    const segments = g.gather(g.reshape(x, [-1, shapes[0].in]), gather); // [slots, rows, in]
    const deltas = targets.map((t, k) => {
      const a = g.input(loraInputName(layer, t, "a"), "float32", ["lora_slots", shapes[k].in, "lora_rank"]);
      const b = g.input(loraInputName(layer, t, "b"), "float32", ["lora_slots", "lora_rank", shapes[k].out]);
      return g.matmul(g.matmul(segments, a), b);
    });
    const outTotal = shapes.reduce((n, s) => n + s.out, 0);
    const joined = deltas.length === 1 ? deltas[0] : g.concat(deltas, -1); // [slots, rows, outTotal]
    const rows = g.concat([g.reshape(joined, [-1, outTotal]), g.constFloat(new Array(outTotal).fill(0), [1, outTotal])], 0);
    return g.gather(rows, scatter); // [B, T, outTotal]; rows without an adapter take the zero row
  };
}

/** x·A·B per target with one adapter's matrices as graph inputs; (x·mask)·A·B for the `dropout` targets. */
export function singleLora(g: Graph, dropout: readonly LoraTarget[] = []): LoraBranch {
  return (layer, x, targets, shapes) => {
    const deltas = targets.map((t, k) => {
      const a = g.input(loraInputName(layer, t, "a"), "float32", [shapes[k].in, "lora_rank"]);
      const b = g.input(loraInputName(layer, t, "b"), "float32", ["lora_rank", shapes[k].out]);
      const input = dropout.includes(t) ? g.mul(x, g.input(loraDropoutName(layer, t), "float32", ["batch", "seq", shapes[k].in])) : x;
      return g.matmul(g.matmul(input, a), b);
    });
    return deltas.length === 1 ? deltas[0] : g.concat(deltas, -1);
  };
}
