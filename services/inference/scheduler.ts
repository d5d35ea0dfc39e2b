/**
 * Continuous batching. One loop alternates a prefill chunk of the next waiting sequence (alone,
 * so a long prompt is spread over several iterations) with one decode step of the running batch.
 * Sequences join the batch when their prompt is done and leave it as soon as they finish or are
 * cancelled; their cache rows are merged in / selected out between steps.
 */
import type { LoraWeights } from "../adapters/types.ts";
import type { DecoderRunner, LoraFeeds } from "./decoder-runner.ts";
import { EngineClosedError, EngineOverloadedError } from "./errors.ts";
import { BatchCache, type CacheShape } from "./kv-cache.ts";
import { loraFeeds, type LoraSlots } from "./lora-feeds.ts";

/** What the scheduler needs from a request; sampling and text live behind `accept`. */
export interface ScheduledSequence {
  readonly promptTokens: number[];
  /** Resolves to the adapter (or undefined for the base model) before the sequence may start. */
  readonly adapter: Promise<LoraWeights | undefined>;
  readonly cancelled: boolean;
  /** Called when the prompt's first chunk is about to run. */
  started(): void;
  /** Logits after the last fed token -> the next token to feed, or undefined when finished. */
  accept(logits: Float32Array): number | undefined;
  /** Called exactly once when the sequence leaves the scheduler. */
  finish(error?: unknown): void;
}

export interface SchedulerOptions {
  maxBatch: number;
  maxQueue: number;
  prefillChunk: number;
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
  cache: BatchCache;
  done: number;
}

interface Waiting {
  seq: ScheduledSequence;
  adapter?: LoraWeights;
  ready: boolean;
  failed?: unknown;
}

export interface SchedulerStats {
  waiting: number;
  running: number;
  prefilling: number;
  decodeSteps: number;
  prefillChunks: number;
  /** Largest number of sequences decoded in one step so far. */
  peakBatch: number;
}

export class Scheduler {
  private readonly waiting: Waiting[] = [];
  private prefilling?: Prefilling;
  private running: Running[] = [];
  private cache: BatchCache;
  private wake?: () => void;
  private closed = false;
  private loop?: Promise<void>;
  private looping = false;
  private counters = { decodeSteps: 0, prefillChunks: 0, peakBatch: 0 };

  constructor(
    private readonly shape: CacheShape & { vocabSize: number },
    private readonly plain: DecoderRunner,
    private readonly withLora: DecoderRunner | undefined,
    private readonly loraSlots: LoraSlots | undefined,
    private readonly options: SchedulerOptions,
  ) {
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
        if (adapter && !this.withLora) entry.failed = new Error("this engine was created without adapter support");
        entry.adapter = adapter;
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
    return { waiting: this.waiting.length, running: this.running.length, prefilling: this.prefilling ? 1 : 0, ...this.counters };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.poke();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      this.dropCancelled();
      this.startPrefill();
      if (!this.prefilling && !this.running.length) {
        if (!this.waiting.length) {
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
    if (this.prefilling?.seq.cancelled) {
      this.prefilling.seq.finish();
      this.prefilling = undefined;
    }
    if (this.running.some((r) => r.seq.cancelled)) {
      const keep: number[] = [];
      this.running.forEach((r, i) => (r.seq.cancelled ? r.seq.finish() : keep.push(i)));
      this.keepRows(keep);
    }
  }

  /** Moves the first ready waiting sequence into prefill, if the batch has room for it. */
  private startPrefill(): void {
    if (this.prefilling || this.running.length >= this.options.maxBatch) return;
    const index = this.waiting.findIndex((w) => w.ready && this.adapterFits(w.adapter));
    if (index < 0) return;
    const [w] = this.waiting.splice(index, 1);
    w.seq.started();
    this.prefilling = { seq: w.seq, adapter: w.adapter, cache: BatchCache.empty(this.shape, 1), done: 0 };
  }

  private adapterFits(adapter: LoraWeights | undefined): boolean {
    if (!adapter) return true;
    const ids = new Set(this.running.flatMap((r) => (r.adapter ? [r.adapter.id] : [])));
    return ids.has(adapter.id) || ids.size < this.options.maxAdaptersPerBatch;
  }

  private async prefillChunk(p: Prefilling): Promise<void> {
    const prompt = p.seq.promptTokens;
    const chunk = prompt.slice(p.done, p.done + this.options.prefillChunk);
    const lora = this.loraSlots && loraFeeds(this.loraSlots, [p.adapter]);
    const out = await this.runnerFor(lora).step({ cache: p.cache, tokens: [chunk], startPositions: [p.done], lora });
    this.counters.prefillChunks++;
    p.done += chunk.length;
    if (p.done < prompt.length) return;
    this.prefilling = undefined;
    const next = acceptSafely(p.seq, out.logits);
    if (next === undefined) return;
    this.cache = this.running.length ? BatchCache.merge(this.cache, p.cache) : p.cache;
    this.running.push({ seq: p.seq, adapter: p.adapter, next, position: prompt.length });
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
    this.running = keep.map((i) => this.running[i]);
    this.cache = this.cache.select(keep);
  }

  /** LoRA feeds for the running batch (none when no row has an adapter). */
  private batchLora(): LoraFeeds | undefined {
    return this.loraSlots && loraFeeds(this.loraSlots, this.running.map((r) => r.adapter));
  }

  private runnerFor(lora: LoraFeeds | undefined): DecoderRunner {
    return lora ? this.withLora! : this.plain;
  }

  private failAll(error: unknown): void {
    const all = [...this.waiting.map((w) => w.seq), ...(this.prefilling ? [this.prefilling.seq] : []), ...this.running.map((r) => r.seq)];
    this.waiting.length = 0;
    this.prefilling = undefined;
    this.running = [];
    this.cache = BatchCache.empty(this.shape, 0);
    for (const seq of all) seq.finish(error);
  }
}

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
