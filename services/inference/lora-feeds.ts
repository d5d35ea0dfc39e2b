/**
 * The decoder's LoRA inputs for a batch: A/B tensors stacked over slots, each row's slot, and the
 * segment indices the graph takes (services/model/decoder.ts). A `LoraSlots` provider decides how
 * the stacked tensors are kept between steps; `buildLoraTensors` stacks a list of adapters afresh.
 */
import * as ort from "onnxruntime-node";
import { LORA_TARGETS, loraInputName, type LoraModuleKey, type LoraWeights, projectionShape } from "../model/lora-layout.ts";
import type { DecoderConfig } from "../model/config.ts";

/** Marks a row without an adapter in `LoraFeeds.slots`. */
export const NO_ADAPTER = -1;

export interface LoraFeeds {
  /** Each row's slot in `tensors` (NO_ADAPTER for none). */
  slots: number[];
  /** `lora.{i}.{target}.{a|b}` -> [slots, in, rank] / [slots, rank, out]. */
  tensors: Record<string, ort.Tensor>;
}

/**
 * Where the engine gets a batch's LoRA feeds. The adapters' persistent slot table
 * (services/inference/slot-table.ts) fits: it keeps fixed tensors and copies an adapter into a slot
 * only when a batch first needs it.
 */
export interface LoraSlots {
  /** The stacked tensors, valid for the slots returned by the last `slotsFor` call. */
  readonly tensors: Record<string, ort.Tensor>;
  /** The slot of each row's adapter (NO_ADAPTER for none), loading adapters into slots as needed. */
  slotsFor(rows: Array<LoraWeights | undefined>): number[];
}

/**
 * The feeds of one step, or none when no row has an adapter (the LoRA-free graph serves it), unless
 * `always`: then the LoRA graph serves every step, and a step without adapters gets feeds too.
 */
export function loraFeeds(provider: LoraSlots, rows: Array<LoraWeights | undefined>, always = false): LoraFeeds | undefined {
  if (!always && !rows.some((a) => a)) return undefined;
  const slots = provider.slotsFor(rows);
  return { slots, tensors: provider.tensors };
}

/**
 * `lora_gather` and `lora_scatter` for rows of `seq` new tokens each: segment s lists the token
 * rows (row·seq + t) of the sequences in slot s, padded with row 0 to the fullest segment; each
 * token's scatter index is its place in the segments, or the zero row after them.
 */
export function segmentIndices(slots: number[], seq: number, slotCount: number): { lora_gather: ort.Tensor; lora_scatter: ort.Tensor } {
  const members: number[][] = Array.from({ length: slotCount }, () => []);
  slots.forEach((slot, row) => slot !== NO_ADAPTER && members[slot]!.push(row));
  const width = Math.max(1, ...members.map((m) => m.length)) * seq;
  const gather = new BigInt64Array(slotCount * width);
  const scatter = new BigInt64Array(slots.length * seq).fill(BigInt(slotCount * width));
  members.forEach((rows, slot) =>
    rows.forEach((row, m) => {
      for (let t = 0; t < seq; t++) {
        const at = slot * width + m * seq + t;
        gather[at] = BigInt(row * seq + t);
        scatter[row * seq + t] = BigInt(at);
      }
    }),
  );
  return {
    lora_gather: new ort.Tensor("int64", gather, [slotCount, width]),
    lora_scatter: new ort.Tensor("int64", scatter, [slots.length, seq]),
  };
}

/** Stacks `adapters` into slots 0..n-1; ranks are zero-padded to the largest. */
export function buildLoraTensors(config: DecoderConfig, adapters: LoraWeights[]): Record<string, ort.Tensor> {
  const slots = adapters.length;
  const rank = Math.max(1, ...adapters.map((a) => a.maxRank));
  const tensors: Record<string, ort.Tensor> = {};
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of LORA_TARGETS) {
      const { in: inSize, out } = projectionShape(config, target);
      const a = new Float32Array(slots * inSize * rank);
      const b = new Float32Array(slots * rank * out);
      adapters.forEach((adapter, slot) => {
        const m = adapter.modules.get(`layers.${layer}.${target}` as LoraModuleKey);
        if (!m) return;
        checkModule(adapter.id, layer, target, m, inSize, out);
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
