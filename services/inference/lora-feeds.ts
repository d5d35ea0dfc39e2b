/**
 * The decoder's LoRA inputs for a batch: stacked A/B tensors over slots (slot 0 is the all-zero
 * "no adapter" slot) and each row's slot. `buildLoraTensors` stacks a list of adapters from
 * scratch; a `LoraSlots` provider decides how tensors are kept between steps.
 */
import * as ort from "onnxruntime-node";
import type { LoraModuleKey, LoraWeights } from "../adapters/types.ts";
import type { DecoderConfig } from "../model/config.ts";
import {
  denseLoraInputName,
  denseLoraMaskName,
  LORA_TARGET_NAMES,
  loraInputName,
  PROJECTION_GROUPS,
  projectionShape,
} from "../model/decoder.ts";
import type { LoraFeeds } from "./decoder-runner.ts";

/**
 * Where the engine gets a batch's LoRA feeds. The adapters' persistent slot table
 * (services/adapters/slot-table.ts) fits: it keeps fixed tensors and copies an adapter into a slot
 * only when a batch first needs it.
 */
export interface LoraSlots {
  /** The stacked tensors, valid for the slots returned by the last `slotsFor` call. */
  readonly tensors: Record<string, ort.Tensor>;
  /** Changes whenever the contents of `tensors` change in place (unset: they never do). */
  readonly generation?: number;
  /** The slot of each row's adapter (0 for none), loading adapters into slots as needed. */
  slotsFor(rows: Array<LoraWeights | undefined>): number[];
}

/**
 * A simple provider (the engine's default is the persistent LoraSlotTable): stacks the batch's
 * distinct adapters afresh whenever that set changes, remembering a few recent sets (a prefill
 * chunk and the running batch alternate).
 */
export class RebuiltLoraSlots implements LoraSlots {
  private recent = new Map<string, { tensors: Record<string, ort.Tensor>; slotOf: Map<string, number> }>();
  private current: Record<string, ort.Tensor> = {};

  constructor(
    private readonly config: DecoderConfig,
    private readonly remembered = 4,
  ) {}

  get tensors(): Record<string, ort.Tensor> {
    return this.current;
  }

  slotsFor(rows: Array<LoraWeights | undefined>): number[] {
    const adapters = [...new Map(rows.flatMap((a) => (a ? [[a.id, a] as const] : []))).values()];
    const key = adapters.map((a) => a.id).join("\u0000");
    let entry = this.recent.get(key);
    if (entry) this.recent.delete(key);
    entry ??= { tensors: buildLoraTensors(this.config, adapters), slotOf: new Map(adapters.map((a, i) => [a.id, i + 1])) };
    this.recent.set(key, entry); // most recent last
    if (this.recent.size > this.remembered) this.recent.delete(this.recent.keys().next().value!);
    this.current = entry.tensors;
    const slotOf = entry.slotOf;
    return rows.map((a) => (a ? slotOf.get(a.id)! : 0));
  }

  /** Forgets cached stacks holding this adapter (deleted or replaced). */
  evict(id: string): void {
    for (const [key, entry] of this.recent) if (entry.slotOf.has(id)) this.recent.delete(key);
  }
}

/** The feeds of one step: slots for the rows, then the (possibly updated) tensors. */
export function loraFeeds(provider: LoraSlots, rows: Array<LoraWeights | undefined>): LoraFeeds | undefined {
  if (!rows.some((a) => a)) return undefined;
  const slots = provider.slotsFor(rows);
  return { slots, tensors: provider.tensors, generation: provider.generation };
}

/**
 * The dense-LoRA graph's inputs (see services/model/decoder.ts) from the stacked tensors: per
 * layer and projection group, A [in, slots·k·rank] with column (slot·k + target)·rank + r, and B
 * [slots·k·rank, out] block-diagonal over the group's targets.
 */
export function denseLoraTensors(config: DecoderConfig, stacked: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const group of PROJECTION_GROUPS) {
      const k = group.length;
      const first = stacked[loraInputName(layer, group[0], "a")];
      const [slots, inSize, rank] = first.dims as [number, number, number];
      const columns = slots * k * rank;
      const outTotal = group.reduce((n, t) => n + projectionShape(config, t).out, 0);
      const a = new Float32Array(inSize * columns);
      const b = new Float32Array(columns * outTotal);
      let offset = 0;
      group.forEach((target, t) => {
        const width = projectionShape(config, target).out;
        const srcA = stacked[loraInputName(layer, target, "a")].data as Float32Array; // [slots, in, rank]
        const srcB = stacked[loraInputName(layer, target, "b")].data as Float32Array; // [slots, rank, out]
        for (let s = 0; s < slots; s++) {
          const column = (s * k + t) * rank;
          for (let i = 0; i < inSize; i++) a.set(srcA.subarray((s * inSize + i) * rank, (s * inSize + i + 1) * rank), i * columns + column);
          for (let r = 0; r < rank; r++) b.set(srcB.subarray((s * rank + r) * width, (s * rank + r + 1) * width), (column + r) * outTotal + offset);
        }
        offset += width;
      });
      out[denseLoraInputName(layer, group, "a")] = new ort.Tensor("float32", a, [inSize, columns]);
      out[denseLoraInputName(layer, group, "b")] = new ort.Tensor("float32", b, [columns, outTotal]);
    }
  }
  return out;
}

/** `lora_mask.{k}` [rows, 1, slots·k·rank]: 1 in the columns of each row's slot. */
export function denseLoraMasks(rowSlots: number[], slots: number, rank: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const k of new Set(PROJECTION_GROUPS.map((g) => g.length))) {
    const columns = slots * k * rank;
    const mask = new Float32Array(rowSlots.length * columns);
    rowSlots.forEach((slot, row) => mask.fill(1, row * columns + slot * k * rank, row * columns + (slot + 1) * k * rank));
    out[denseLoraMaskName(k)] = new ort.Tensor("float32", mask, [rowSlots.length, 1, columns]);
  }
  return out;
}

/** Stacks `adapters` into slots 1..n (slot 0 zeros); ranks are zero-padded to the largest. */
export function buildLoraTensors(config: DecoderConfig, adapters: LoraWeights[]): Record<string, ort.Tensor> {
  const slots = adapters.length + 1;
  const rank = Math.max(1, ...adapters.map((a) => a.maxRank));
  const tensors: Record<string, ort.Tensor> = {};
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of LORA_TARGET_NAMES) {
      const { in: inSize, out } = projectionShape(config, target);
      const a = new Float32Array(slots * inSize * rank);
      const b = new Float32Array(slots * rank * out);
      adapters.forEach((adapter, k) => {
        const m = adapter.modules.get(`layers.${layer}.${target}` as LoraModuleKey);
        if (!m) return;
        checkModule(adapter.id, layer, target, m, inSize, out);
        const slot = k + 1;
        // a: [in, m.rank] -> [in, rank] (zero-padded columns); b: [m.rank, out] -> first rows.
        for (let i = 0; i < inSize; i++) a.set(m.a.subarray(i * m.rank, (i + 1) * m.rank), (slot * inSize + i) * rank);
        b.set(m.b, slot * rank * out);
      });
      tensors[loraInputName(layer, target, "a")] = new ort.Tensor("float32", a, [slots, inSize, rank]);
      tensors[loraInputName(layer, target, "b")] = new ort.Tensor("float32", b, [slots, rank, out]);
    }
  }
  return tensors;
}

function checkModule(id: string, layer: number, target: string, m: { rank: number; a: Float32Array; b: Float32Array }, inSize: number, out: number): void {
  if (m.a.length !== inSize * m.rank || m.b.length !== m.rank * out) {
    throw new Error(`adapter ${id}: layers.${layer}.${target} has shapes that do not fit the model (rank ${m.rank}, in ${inSize}, out ${out})`);
  }
}
