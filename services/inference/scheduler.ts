/**
 * Continuous batching. One loop alternates a prefill chunk with one decode step of the running
 * batch. Prefill takes the waiting sequences that fit (up to a token budget) as one group and
 * feeds each at most `prefillChunk` prompt tokens per iteration, so a long prompt is spread over
 * several iterations and never stalls the others for long. A sequence joins the running batch as
 * soon as its prompt is done and leaves it as soon as it finishes or is cancelled; the cache rows
 * move in and out in place between steps. A sequence whose consumer stops taking its events is
 * parked: its cache row leaves the batch (it keeps its batch slot) until the consumer catches up.
 *
 * A prompt-tuning adapter makes its sequence N virtual tokens longer at the front: they are
 * prefilled (and chunked) like prompt tokens at positions 0..N-1, so once in the cache the sequence
 * decodes like any other; only LoRA adapters take slots or count against `maxAdaptersPerBatch`.
 */
import type { LoraWeights } from "../model/lora-layout.ts";
import { isPromptTuning, type AdapterWeights, type PromptWeights } from "../model/prompt-tuning.ts";
import type { DecoderRunner } from "./decoder-runner.ts";
import { EngineClosedError, EngineOverloadedError } from "./errors.ts";
import { BatchCache, type CacheShape } from "./kv-cache.ts";
import { loraFeeds, type LoraFeeds, type LoraSlots } from "./lora-feeds.ts";
import { sequenceSlice, virtualTable } from "./virtual-tokens.ts";

/** What the scheduler needs from a request; sampling and text live behind `accept`. */
export interface ScheduledSequence {
  readonly promptTokens: number[];
  /** Resolves to the adapter (or undefined for the base model) before the sequence may start. */
  readonly adapter: Promise<AdapterWeights | undefined>;
  readonly cancelled: boolean;
  /** True while the sequence's consumer is not keeping up; a paused sequence is not decoded. */
  readonly paused: boolean;
  /** Called when the prompt's first chunk is about to run. */
  started(): void;
  /** Wants the logits after every prompt token, not only the last (prompt logprobs). */
  readonly wantsPromptLogits?: boolean;
  /** The logits after prompt token `position`, for each but the last prompt token, in order. */
  acceptPromptLogits?(logits: Float32Array, position: number): void;
  /** Logits after the last fed token -> the next token to feed, or undefined when finished. */
  accept(logits: Float32Array): number | undefined;
  /** Called exactly once when the sequence leaves the scheduler. */
  finish(error?: unknown): void;
}

export interface SchedulerOptions {
  maxBatch: number;
  maxQueue: number;
  /** Most prompt tokens of one sequence per prefill iteration. */
  prefillChunk: number;
  /** Most prompt tokens of all sequences per prefill iteration (at least one sequence runs). */
  prefillBudget: number;
  maxAdaptersPerBatch: number;
}

interface Running {
  seq: ScheduledSequence;
  adapter?: LoraWeights;
  next: number;
  position: number;
}

interface Prefilling {
  seq: ScheduledSequence;
  adapter?: LoraWeights;
  prompt?: PromptWeights;
  /** Tokens of the sequence (virtual, then prompt) already in the cache. */
  done: number;
}

/** A paused running sequence with its own one-row copy of its cache. */
interface Parked {
  run: Running;
  cache: BatchCache;
}

/** Sequences being prefilled together; row i of `cache` is `rows[i]`. */
interface PrefillGroup {
  rows: Prefilling[];
  cache: BatchCache;
}

interface Waiting {
  seq: ScheduledSequence;
  adapter?: LoraWeights;
  prompt?: PromptWeights;
  ready: boolean;
  failed?: unknown;
}

export interface SchedulerStats {
  waiting: number;
  running: number;
  prefilling: number;
  /** Sequences parked because their consumer is not reading (they keep their batch slot). */
  paused: number;
  decodeSteps: number;
  prefillChunks: number;
  /** Largest number of sequences decoded in one step so far. */
  peakBatch: number;
  /** Times a sequence was parked because its consumer fell behind. */
  pauses: number;
  /** Bytes of key/value cache held: the batch's, a prefilling group's and parked rows' (0 when idle). */
  kvCacheBytes: number;
}

export class Scheduler {
  private readonly waiting: Waiting[] = [];
  private prefilling?: PrefillGroup;
  private running: Running[] = [];
  private parked: Parked[] = [];
  private cache: BatchCache;
  private wake?: () => void;
  private closed = false;
  private loop?: Promise<void>;
  private looping = false;
  private counters = { decodeSteps: 0, prefillChunks: 0, peakBatch: 0, pauses: 0 };

  constructor(
    private readonly shape: CacheShape & { vocabSize: number; hiddenSize: number },
    /** The LoRA-free graph's runner; undefined when `withLora` serves every step (an engine with one session). */
    private readonly plain: DecoderRunner | undefined,
    private readonly withLora: DecoderRunner | undefined,
    private readonly loraSlots: LoraSlots | undefined,
    private readonly options: SchedulerOptions,
  ) {
    if (!plain && !(withLora && loraSlots)) throw new Error("a scheduler needs a LoRA-free runner, or a LoRA runner and its slots");
    this.cache = BatchCache.empty(shape, 0);
  }

  /** Queues a sequence; throws EngineOverloadedError when the queue is full. */
  submit(seq: ScheduledSequence): void {
    if (this.closed) throw new EngineClosedError();
    if (this.waiting.length >= this.options.maxQueue) throw new EngineOverloadedError(this.waiting.length, this.options.maxQueue);
    const entry: Waiting = { seq, ready: false };
    this.waiting.push(entry);
    seq.adapter.then(
      (adapter) => {
        if (isPromptTuning(adapter)) entry.prompt = adapter;
        else if (adapter && !this.withLora) entry.failed = new Error("this engine was created without adapter support");
        else entry.adapter = adapter;
        entry.ready = true;
        this.poke();
      },
      (error: unknown) => {
        entry.failed = error;
        entry.ready = true;
        this.poke();
      },
    );
    this.poke();
    if (!this.looping) {
      this.looping = true;
      this.loop = this.run();
    }
  }

  /** Wakes the loop (a new request, an adapter loaded, a cancellation). */
  poke(): void {
    this.wake?.();
  }

  stats(): SchedulerStats {
    const kvCacheBytes = this.cache.bytes + (this.prefilling?.cache.bytes ?? 0) + this.parked.reduce((sum, p) => sum + p.cache.bytes, 0);
    return { waiting: this.waiting.length, running: this.running.length, prefilling: this.prefilling?.rows.length ?? 0, paused: this.parked.length, ...this.counters, kvCacheBytes };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.poke();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      this.dropCancelled();
      this.resumeParked();
      this.parkPaused();
      this.startPrefill();
      if (!this.prefilling && !this.running.length) {
        if (!this.waiting.length && !this.parked.length) {
          this.looping = false; // in the same tick as the check, so a later submit starts a new loop
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        if (this.prefilling) await this.prefillChunk(this.prefilling);
        if (this.running.length) await this.decodeStep();
      } catch (error) {
        this.failAll(error);
      }
    }
    this.failAll(new EngineClosedError());
    this.looping = false;
  }

  private dropCancelled(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const w = this.waiting[i];
      if (w.seq.cancelled || w.failed !== undefined) {
        this.waiting.splice(i, 1);
        w.seq.finish(w.failed);
      }
    }
    const group = this.prefilling;
    if (group?.rows.some((p) => p.seq.cancelled)) {
      const gone = group.rows.flatMap((p, i) => (p.seq.cancelled ? [i] : []));
      for (const i of gone) group.rows[i].seq.finish();
      this.removePrefillRows(group, gone);
    }
    if (this.running.some((r) => r.seq.cancelled)) {
      const keep: number[] = [];
      this.running.forEach((r, i) => (r.seq.cancelled ? r.seq.finish() : keep.push(i)));
      this.keepRows(keep);
    }
    if (this.parked.some((p) => p.run.seq.cancelled)) {
      for (const p of this.parked) if (p.run.seq.cancelled) p.run.seq.finish();
      this.parked = this.parked.filter((p) => !p.run.seq.cancelled);
    }
  }

  /** Moves paused running sequences out of the batch, each with a copy of its cache row. */
  private parkPaused(): void {
    if (!this.running.some((r) => r.seq.paused)) return;
    const keep: number[] = [];
    this.running.forEach((r, i) => (r.seq.paused ? this.parked.push({ run: r, cache: this.cache.select([i]) }) : keep.push(i)));
    this.counters.pauses += this.running.length - keep.length;
    this.keepRows(keep);
  }

  /** Rejoins the batch with the parked sequences whose consumers caught up. */
  private resumeParked(): void {
    if (!this.parked.some((p) => !p.run.seq.paused)) return;
    const still: Parked[] = [];
    for (const p of this.parked) {
      if (p.run.seq.paused) {
        still.push(p);
        continue;
      }
      this.cache.join(p.cache);
      this.running.push(p.run);
    }
    this.parked = still;
  }

  /** Starts a prefill group of the ready waiting sequences that fit in the batch and the budget. */
  private startPrefill(): void {
    if (this.prefilling) return;
    const rows: Prefilling[] = [];
    // Parked sequences count: they rejoin this batch when their consumers catch up.
    const adapters = new Set([...this.running, ...this.parked.map((p) => p.run)].flatMap((r) => (r.adapter ? [r.adapter.id] : [])));
    let tokens = 0;
    for (let i = 0; i < this.waiting.length && this.running.length + this.parked.length + rows.length < this.options.maxBatch; i++) {
      const w = this.waiting[i];
      const first = Math.min(sequenceLength(w), this.options.prefillChunk);
      if (!w.ready || (rows.length > 0 && tokens + first > this.options.prefillBudget)) continue;
      if (w.adapter && !adapters.has(w.adapter.id) && adapters.size >= this.options.maxAdaptersPerBatch) continue;
      if (w.adapter) adapters.add(w.adapter.id);
      tokens += first;
      this.waiting.splice(i--, 1);
      w.seq.started();
      rows.push({ seq: w.seq, adapter: w.adapter, prompt: w.prompt, done: 0 });
    }
    if (rows.length) this.prefilling = { rows, cache: BatchCache.empty(this.shape, rows.length) };
  }

  private async prefillChunk(group: PrefillGroup): Promise<void> {
    const chunkSize = this.options.prefillChunk;
    const { vocabSize, hiddenSize } = this.shape;
    const virtual = virtualTable(group.rows.map((p) => (p.prompt && p.done < p.prompt.numVirtualTokens ? p.prompt : undefined)), vocabSize, hiddenSize);
    const chunks = group.rows.map((p, i) => sequenceSlice(p.seq.promptTokens, virtualCount(p), p.done, chunkSize, virtual?.firstIds[i]));
    const lora = this.loraSlots && loraFeeds(this.loraSlots, group.rows.map((p) => p.adapter), !this.plain);
    const allLogits = group.rows.some((p) => p.seq.wantsPromptLogits);
    const step = { cache: group.cache, tokens: chunks, startPositions: group.rows.map((p) => p.done), lora, allLogits, virtual: virtual?.embeddings };
    const out = await this.runnerFor(lora).step(step);
    this.counters.prefillChunks++;
    const vocab = this.shape.vocabSize;
    // Row i's logits: `picked` positions, left-padded, its last token's at the end.
    const at = (i: number, k: number) => out.logits.subarray((i * out.picked + k) * vocab, (i * out.picked + k + 1) * vocab);
    const done: number[] = [];
    group.rows.forEach((p, i) => {
      if (allLogits && p.seq.wantsPromptLogits) this.scorePrompt(p, chunks[i], (k) => at(i, out.picked - chunks[i].length + k));
      p.done += chunks[i].length;
      if (p.done < sequenceLength(p)) return;
      done.push(i);
      const next = acceptSafely(p.seq, at(i, out.picked - 1));
      if (next === undefined) return;
      this.cache.join(group.cache.select([i]));
      this.running.push({ seq: p.seq, adapter: p.adapter, next, position: sequenceLength(p) });
    });
    this.removePrefillRows(group, done);
  }

  /**
   * Hands a row the logits after each of its chunk's prompt tokens but the last (that one picks the
   * first new token); the logits after virtual tokens score nothing.
   */
  private scorePrompt(p: Prefilling, chunk: number[], logitsAfter: (k: number) => Float32Array): void {
    const last = p.seq.promptTokens.length - 1;
    const virtual = virtualCount(p);
    for (let k = 0; k < chunk.length; k++) {
      const position = p.done + k - virtual;
      if (position >= last) break;
      if (position >= 0) p.seq.acceptPromptLogits?.(logitsAfter(k), position);
    }
  }

  private removePrefillRows(group: PrefillGroup, rows: number[]): void {
    if (!rows.length) return;
    const order = group.cache.removeRows(rows);
    group.rows = order.map((i) => group.rows[i]);
    if (!group.rows.length) this.prefilling = undefined;
  }

  private async decodeStep(): Promise<void> {
    const rows = this.running;
    const lora = this.batchLora();
    const out = await this.runnerFor(lora).step({
      cache: this.cache,
      tokens: rows.map((r) => [r.next]),
      startPositions: rows.map((r) => r.position),
      lora,
    });
    this.counters.decodeSteps++;
    this.counters.peakBatch = Math.max(this.counters.peakBatch, rows.length);
    const vocab = this.shape.vocabSize;
    const keep: number[] = [];
    rows.forEach((r, i) => {
      r.position++;
      const next = acceptSafely(r.seq, out.logits.subarray(i * vocab, (i + 1) * vocab));
      if (next !== undefined) {
        r.next = next;
        keep.push(i);
      }
    });
    if (keep.length !== rows.length) this.keepRows(keep);
  }

  private keepRows(keep: number[]): void {
    const kept = new Set(keep);
    const order = this.cache.removeRows(this.running.flatMap((_, i) => (kept.has(i) ? [] : [i])));
    this.running = order.map((i) => this.running[i]);
    // An empty batch gives its buffers back: they grew to its widest and fullest moment.
    if (this.running.length === 0) this.cache = BatchCache.empty(this.shape, 0);
  }

  /** LoRA feeds for the running batch (none when no row has an adapter and the LoRA-free runner serves it). */
  private batchLora(): LoraFeeds | undefined {
    return this.loraSlots && loraFeeds(this.loraSlots, this.running.map((r) => r.adapter), !this.plain);
  }

  private runnerFor(lora: LoraFeeds | undefined): DecoderRunner {
    return lora ? this.withLora! : this.plain!;
  }

  private failAll(error: unknown): void {
    const all = [...this.waiting.map((w) => w.seq), ...(this.prefilling?.rows.map((p) => p.seq) ?? []), ...this.running.map((r) => r.seq), ...this.parked.map((p) => p.run.seq)];
    this.waiting.length = 0;
    this.parked = [];
    this.prefilling = undefined;
    this.running = [];
    this.cache = BatchCache.empty(this.shape, 0);
    for (const seq of all) seq.finish(error);
  }
}

const virtualCount = (p: { prompt?: PromptWeights }) => p.prompt?.numVirtualTokens ?? 0;

/** Tokens to prefill: the virtual ones, then the prompt. */
const sequenceLength = (p: { seq: ScheduledSequence; prompt?: PromptWeights }) => virtualCount(p) + p.seq.promptTokens.length;

/** The sequence's next token; undefined once it finished (done, cancelled, or failing alone on an error). */
function acceptSafely(seq: ScheduledSequence, logits: Float32Array): number | undefined {
  if (seq.cancelled) {
    seq.finish();
    return undefined;
  }
  let next: number | undefined;
  try {
    next = seq.accept(logits);
  } catch (error) {
    seq.finish(error);
    return undefined;
  }
  if (next === undefined) seq.finish();
  return next;
}
