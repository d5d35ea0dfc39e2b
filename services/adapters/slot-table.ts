/**
 * Persistent LoRA slots for the decoder graph's stacked inputs. The tensors are allocated once
 * ([capacity + 1] slots at the node's maximum rank; slot 0 stays all zeros = "no adapter") and an
 * adapter is copied into a slot only when a batch first needs it, so a sequence joining or leaving
 * the batch costs one adapter's copy instead of rebuilding every slot (services/inference/lora-feeds.ts
 * rebuilds all of them). Feeding the same tensors every step is safe: nothing else writes them.
 */
import * as ort from "onnxruntime-node";
import type { DecoderConfig } from "../model/config.ts";
import { LORA_TARGET_NAMES, loraInputName, projectionShape } from "../model/decoder.ts";
import type { LoraModuleKey, LoraWeights } from "./types.ts";

type SlotShape = Pick<DecoderConfig, "numLayers" | "hiddenSize" | "intermediateSize" | "numHeads" | "numKvHeads" | "headDim">;

interface ModuleBuffers {
  key: LoraModuleKey;
  inSize: number;
  outSize: number;
  a: Float32Array;
  b: Float32Array;
}

export class LoraSlotTable {
  /** `lora.{layer}.{target}.{a|b}` -> [capacity + 1, in, rank] / [capacity + 1, rank, out]; fixed objects. */
  readonly tensors: Record<string, ort.Tensor> = {};
  private readonly modules: ModuleBuffers[] = [];
  /** Adapter id per slot (index 0 unused), in least-recently-used order of `lastUse`. */
  private readonly occupant: Array<string | undefined>;
  private readonly lastUse: number[];
  private clock = 0;

  constructor(
    config: SlotShape,
    readonly capacity: number,
    readonly rank: number,
  ) {
    const slots = capacity + 1;
    for (let layer = 0; layer < config.numLayers; layer++) {
      for (const target of LORA_TARGET_NAMES) {
        const { in: inSize, out: outSize } = projectionShape(config as DecoderConfig, target);
        const a = new Float32Array(slots * inSize * rank);
        const b = new Float32Array(slots * rank * outSize);
        this.modules.push({ key: `layers.${layer}.${target}`, inSize, outSize, a, b });
        this.tensors[loraInputName(layer, target, "a")] = new ort.Tensor("float32", a, [slots, inSize, rank]);
        this.tensors[loraInputName(layer, target, "b")] = new ort.Tensor("float32", b, [slots, rank, outSize]);
      }
    }
    this.occupant = new Array(slots).fill(undefined);
    this.lastUse = new Array(slots).fill(0);
  }

  /**
   * The slot of each row's adapter (0 for none), loading into free or least recently used slots
   * the adapters this batch needs; slots held by adapters of this batch are never reused for it.
   */
  slotsFor(rows: Array<LoraWeights | undefined>): number[] {
    const distinct = new Map(rows.flatMap((a) => (a ? [[a.id, a] as const] : [])));
    if (distinct.size > this.capacity) {
      throw new Error(`a batch holds ${distinct.size} distinct adapters, more than the ${this.capacity} LoRA slots`);
    }
    const tick = ++this.clock;
    const slotOf = new Map<string, number>();
    for (const id of distinct.keys()) {
      const slot = this.occupant.indexOf(id);
      if (slot > 0) {
        slotOf.set(id, slot);
        this.lastUse[slot] = tick;
      }
    }
    for (const [id, adapter] of distinct) {
      if (slotOf.has(id)) continue;
      const slot = this.victim(tick);
      this.load(slot, adapter);
      slotOf.set(id, slot);
      this.lastUse[slot] = tick;
    }
    return rows.map((a) => (a ? slotOf.get(a.id)! : 0));
  }

  /** Forgets an adapter (deleted or replaced), so a new version with the same id is copied afresh. */
  evict(id: string): void {
    const slot = this.occupant.indexOf(id);
    if (slot > 0) this.occupant[slot] = undefined;
  }

  /** A free slot, else the least recently used one not used by the current batch (tick). */
  private victim(tick: number): number {
    let best = -1;
    for (let slot = 1; slot <= this.capacity; slot++) {
      if (this.occupant[slot] === undefined) return slot;
      if (this.lastUse[slot] !== tick && (best < 0 || this.lastUse[slot]! < this.lastUse[best]!)) best = slot;
    }
    return best;
  }

  private load(slot: number, adapter: LoraWeights): void {
    if (adapter.maxRank > this.rank) throw new Error(`adapter ${adapter.id} has rank ${adapter.maxRank}, above the slots' rank ${this.rank}`);
    const R = this.rank;
    for (const m of this.modules) {
      const aStart = slot * m.inSize * R;
      const bStart = slot * R * m.outSize;
      const weights = adapter.modules.get(m.key);
      if (!weights) {
        m.a.fill(0, aStart, aStart + m.inSize * R);
        m.b.fill(0, bStart, bStart + R * m.outSize);
        continue;
      }
      const r = weights.rank;
      if (weights.a.length !== m.inSize * r || weights.b.length !== r * m.outSize) {
        throw new Error(`adapter ${adapter.id}: ${m.key} does not fit the model (rank ${r}, in ${m.inSize}, out ${m.outSize})`);
      }
      if (r === R) m.a.set(weights.a, aStart);
      else {
        m.a.fill(0, aStart, aStart + m.inSize * R);
        for (let i = 0; i < m.inSize; i++) m.a.set(weights.a.subarray(i * r, (i + 1) * r), aStart + i * R);
      }
      m.b.set(weights.b, bStart);
      m.b.fill(0, bStart + r * m.outSize, bStart + R * m.outSize);
    }
    this.occupant[slot] = adapter.id;
  }
}
