/**
 * Persistent LoRA slots for the decoder graph's stacked inputs. Buffers hold `capacity` slots and
 * an adapter is copied into a slot only when a batch first needs it, so a sequence joining or
 * leaving the batch costs at most one adapter's copy instead of restacking every adapter.
 *
 * Two things keep the graph's LoRA work small without reallocating per step:
 * - the rank is the largest rank resident so far (up to `maxRank`), not `maxRank` itself: padding a
 *   rank-8 adapter to 64 would multiply the LoRA arithmetic by 8; a larger adapter regrows the
 *   buffers once and copies the residents back in;
 * - the fed tensors cover only slots 0..the highest slot the batch uses (a prefix of the buffers,
 *   since slots are the outer axis; free slots are filled lowest first), so a batch whose one
 *   adapter sits in slot 0 feeds 1 slot, not `capacity`: the graph runs a segment per fed slot.
 * Feeding the same tensors every step is safe: nothing else writes them.
 */
import * as ort from "onnxruntime-node";
import type { DecoderConfig } from "../model/config.ts";
import { LORA_TARGETS, loraInputName, type LoraModuleKey, type LoraWeights, projectionShape } from "../model/lora-layout.ts";
import { NO_ADAPTER } from "./lora-feeds.ts";

type SlotShape = Pick<DecoderConfig, "numLayers" | "hiddenSize" | "intermediateSize" | "numHeads" | "numKvHeads" | "headDim">;

interface ModuleBuffers {
  key: LoraModuleKey;
  name: { a: string; b: string };
  inSize: number;
  outSize: number;
  a: Float32Array;
  b: Float32Array;
}

export class LoraSlotTable {
  private modules: ModuleBuffers[] = [];
  /** The adapter in each slot; compared by identity, so a reloaded adapter is copied afresh. */
  private readonly occupant: Array<LoraWeights | undefined>;
  private readonly lastUse: number[];
  private clock = 0;
  private currentRank = 0;
  /** Slots fed for the last batch: 1 + the highest slot it uses. */
  private fedSlots = 1;
  /** Fed tensors per slot count, for the current buffers. */
  private views = new Map<number, Record<string, ort.Tensor>>();

  constructor(
    private readonly config: SlotShape,
    readonly capacity: number,
    readonly maxRank: number,
  ) {
    if (!(capacity >= 1) || !(maxRank >= 1)) throw new Error(`LoRA slots need a capacity and a maximum rank of at least 1 (got ${capacity}, ${maxRank})`);
    this.occupant = new Array(capacity).fill(undefined);
    this.lastUse = new Array(capacity).fill(0);
    this.allocate(1);
  }

  /** The rank the slots are padded to: the largest rank loaded so far (at least 1). */
  get rank(): number {
    return this.currentRank;
  }

  /** `lora.{layer}.{target}.{a|b}` -> [slots, in, rank] / [slots, rank, out], slots = 1 + the last batch's highest slot. */
  get tensors(): Record<string, ort.Tensor> {
    const slots = this.fedSlots;
    let view = this.views.get(slots);
    if (!view) {
      const R = this.currentRank;
      view = {};
      for (const m of this.modules) {
        view[m.name.a] = new ort.Tensor("float32", m.a.subarray(0, slots * m.inSize * R), [slots, m.inSize, R]);
        view[m.name.b] = new ort.Tensor("float32", m.b.subarray(0, slots * R * m.outSize), [slots, R, m.outSize]);
      }
      this.views.set(slots, view);
    }
    return view;
  }

  /**
   * The slot of each row's adapter (NO_ADAPTER for none), loading into free or least recently used slots
   * the adapters this batch needs; slots held by adapters of this batch are never reused for it.
   */
  slotsFor(rows: Array<LoraWeights | undefined>): number[] {
    const distinct = new Set<LoraWeights>();
    for (const a of rows) if (a) distinct.add(a);
    if (distinct.size > this.capacity) {
      throw new Error(`a batch holds ${distinct.size} distinct adapters, more than the ${this.capacity} LoRA slots`);
    }
    const tick = ++this.clock;
    const slotOf = new Map<LoraWeights, number>();
    for (const adapter of distinct) {
      const slot = this.occupant.indexOf(adapter);
      if (slot >= 0) {
        slotOf.set(adapter, slot);
        this.lastUse[slot] = tick;
      }
    }
    for (const adapter of distinct) {
      if (slotOf.has(adapter)) continue;
      const slot = this.victim(tick);
      this.load(slot, adapter);
      slotOf.set(adapter, slot);
      this.lastUse[slot] = tick;
    }
    this.fedSlots = 1 + Math.max(0, ...slotOf.values());
    return rows.map((a) => (a ? slotOf.get(a)! : NO_ADAPTER));
  }

  /** Forgets an adapter (deleted or replaced), so a new version with the same id is copied afresh. */
  evict(id: string): void {
    for (let slot = 0; slot < this.capacity; slot++) if (this.occupant[slot]?.id === id) this.occupant[slot] = undefined;
  }

  /** A free slot (lowest first, keeping the fed prefix short), else the least recently used one not used by this batch. */
  private victim(tick: number): number {
    let best = -1;
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.occupant[slot] === undefined) return slot;
      if (this.lastUse[slot] !== tick && (best < 0 || this.lastUse[slot]! < this.lastUse[best]!)) best = slot;
    }
    return best;
  }

  private load(slot: number, adapter: LoraWeights): void {
    if (adapter.maxRank > this.maxRank) throw new Error(`adapter ${adapter.id} has rank ${adapter.maxRank}, above the slots' rank ${this.maxRank}`);
    for (const m of this.modules) {
      const weights = adapter.modules.get(m.key);
      if (weights && (weights.a.length !== m.inSize * weights.rank || weights.b.length !== weights.rank * m.outSize)) {
        throw new Error(`adapter ${adapter.id}: ${m.key} does not fit the model (rank ${weights.rank}, in ${m.inSize}, out ${m.outSize})`);
      }
    }
    if (adapter.maxRank > this.currentRank) this.allocate(adapter.maxRank);
    this.copy(slot, adapter);
    this.occupant[slot] = adapter;
  }

  /** (Re)allocates the buffers at `rank` and copies the resident adapters back in. */
  private allocate(rank: number): void {
    const slots = this.capacity;
    this.modules = [];
    for (let layer = 0; layer < this.config.numLayers; layer++) {
      for (const target of LORA_TARGETS) {
        const { in: inSize, out: outSize } = projectionShape(this.config as DecoderConfig, target);
        this.modules.push({
          key: `layers.${layer}.${target}`,
          name: { a: loraInputName(layer, target, "a"), b: loraInputName(layer, target, "b") },
          inSize,
          outSize,
          a: new Float32Array(slots * inSize * rank),
          b: new Float32Array(slots * rank * outSize),
        });
      }
    }
    this.currentRank = rank;
    this.views = new Map();
    this.occupant.forEach((adapter, slot) => adapter && this.copy(slot, adapter));
  }

  private copy(slot: number, adapter: LoraWeights): void {
    const R = this.currentRank;
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
      if (r === R) m.a.set(weights.a, aStart);
      else {
        m.a.fill(0, aStart, aStart + m.inSize * R);
        for (let i = 0; i < m.inSize; i++) m.a.set(weights.a.subarray(i * r, (i + 1) * r), aStart + i * R);
      }
      m.b.set(weights.b, bStart);
      m.b.fill(0, bStart + r * m.outSize, bStart + R * m.outSize);
    }
  }
}
