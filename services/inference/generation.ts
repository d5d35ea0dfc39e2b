/**
 * One request in flight: turns logits into tokens (sampler), tokens into text (detokenizer, stop
 * sequences) and text into GenerateEvents, and decides when the sequence is finished.
 */
import type { GenerateEvent, GenerateRequest, PromptTokenLogprob, TokenLogprob } from "../../ports/index.ts";
import type { AdapterWeights } from "../model/prompt-tuning.ts";
import type { AdapterLease } from "./adapter-lease.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import { createDetokenizer, type Detokenizer } from "./detokenizer.ts";
import { NonFiniteLogitsError } from "./errors.ts";
import { EventStream } from "./event-stream.ts";
import { createSampler, logSumExp, topIndices, type Sampler, type SampleResult, type TokenChoice } from "./sampler.ts";
import type { ScheduledSequence } from "./scheduler.ts";
import { createStopMatcher, type StopMatcher } from "./stop.ts";

export interface GenerationContext {
  tokenizer: TextTokenizer;
  vocabSize: number;
  eosTokenIds: Set<number>;
  contextLength: number;
  /** The request's adapter lease (undefined: the base model); released when the sequence ends. */
  lease: Promise<AdapterLease | undefined>;
  /** Tells the scheduler something changed (a cancellation, a consumer catching up). */
  poke(): void;
  /** Told when the sequence's first prompt chunk runs, and once when it leaves the scheduler (whether it had started). */
  lifecycle?: { started(): void; ended(started: boolean): void };
}

export class Generation implements ScheduledSequence {
  readonly events: EventStream<GenerateEvent>;
  readonly promptTokens: number[];
  readonly adapter: Promise<AdapterWeights | undefined>;
  private readonly sampler: Sampler;
  private readonly detokenizer: Detokenizer;
  private readonly stops: StopMatcher;
  private readonly history: number[];
  private abandoned = false;
  private completion = 0;
  private finishReason: "stop" | "length" = "length";
  private lastToken = -1;
  private readonly submittedAt = performance.now();
  private startedAt?: number;
  private firstTokenAt?: number;
  private finished = false;
  private leaseReleased = false;
  /** Prompt tokens scored so far (echo with logprobs); undefined when not asked for. */
  private promptLogprobs?: PromptTokenLogprob[];

  constructor(
    private readonly request: GenerateRequest,
    private readonly context: GenerationContext,
  ) {
    this.promptTokens = request.promptTokens;
    this.history = [...request.promptTokens];
    this.adapter = context.lease.then((lease) => lease?.weights);
    this.sampler = createSampler(request.params, context.vocabSize);
    // A prompt of only special tokens (e.g. BOS) means the output starts the text.
    const atStartOfText = request.promptTokens.every((t) => context.tokenizer.specialTokenIds.has(t));
    this.detokenizer = createDetokenizer(context.tokenizer, { atStartOfText });
    this.stops = createStopMatcher(request.params.stop);
    this.events = new EventStream<GenerateEvent>({ onAbandon: () => this.cancel(), onDrain: () => context.poke() });
    this.adapter.catch(() => undefined); // failures are reported through finish()
    request.signal?.addEventListener("abort", () => this.cancel(), { once: true });
    if (request.promptLogprobs !== undefined) {
      const first = this.describe({ token: request.promptTokens[0], logprob: 0 });
      this.promptLogprobs = [{ ...first, logprob: null, top: [] }];
    }
  }

  get wantsPromptLogits(): boolean {
    return this.promptLogprobs !== undefined;
  }

  /** Logits after prompt token `position`: scores prompt token `position + 1`, raw as the sampler's logprobs. */
  acceptPromptLogits(logits: Float32Array, position: number): void {
    const token = this.promptTokens[position + 1];
    if (!this.promptLogprobs || token === undefined) return;
    const norm = logSumExp(logits);
    const top = topIndices(logits, this.request.promptLogprobs ?? 0).map((t) => this.describe({ token: t, logprob: logits[t] - norm }));
    this.promptLogprobs.push({ ...this.describe({ token, logprob: logits[token] - norm }), top });
  }

  get cancelled(): boolean {
    return this.abandoned || Boolean(this.request.signal?.aborted);
  }

  /** The consumer is not taking events: decoding more would only buffer them. */
  get paused(): boolean {
    return this.events.full;
  }

  started(): void {
    if (this.startedAt === undefined) this.context.lifecycle?.started();
    this.startedAt = performance.now();
  }

  accept(logits: Float32Array): number | undefined {
    if (!allFinite(logits)) throw new NonFiniteLogitsError(this.completion);
    if (this.promptLogprobs && this.completion === 0) this.events.push({ type: "prompt", logprobs: this.promptLogprobs });
    const choice = this.sampler.sample(logits, this.history);
    const token = choice.token;
    this.firstTokenAt ??= performance.now();
    this.history.push(token);
    this.completion++;
    this.lastToken = token;
    if (this.context.eosTokenIds.has(token)) return this.stop("stop");
    const piece = this.stops.push(this.detokenizer.push(token));
    this.events.push({ type: "text", text: piece.text, tokenId: token, logprob: this.logprob(choice) });
    if (piece.stop !== undefined) return this.stop("stop");
    if (this.completion >= this.request.params.maxTokens || this.history.length >= this.context.contextLength) return this.stop("length");
    return token;
  }

  finish(error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.context.lifecycle?.ended(this.startedAt !== undefined);
    const completed = error === undefined && !this.cancelled;
    this.releaseLease(completed ? this.completion : undefined);
    if (error !== undefined) return this.events.end(error);
    if (this.cancelled) return this.events.end(this.request.signal?.reason ?? new Error("generation cancelled"));
    if (!this.stops.stopped) {
      const rest = this.stops.push(this.detokenizer.flush()).text + this.stops.flush();
      if (rest) this.events.push({ type: "text", text: rest, tokenId: this.lastToken });
    }
    const now = performance.now();
    this.events.push({
      type: "done",
      finishReason: this.finishReason,
      promptTokens: this.promptTokens.length,
      completionTokens: this.completion,
      timings: {
        queuedMs: (this.startedAt ?? now) - this.submittedAt,
        firstTokenMs: (this.firstTokenAt ?? now) - this.submittedAt,
        totalMs: now - this.submittedAt,
      },
    });
    this.events.end();
  }

  /**
   * Ends the adapter lease, once: from `finish`, or from the engine when the scheduler refused the
   * sequence. Tokens are counted only for a completion that finished normally.
   */
  releaseLease(completionTokens?: number): void {
    if (this.leaseReleased) return;
    this.leaseReleased = true;
    this.context.lease.then((lease) => lease?.release(completionTokens), () => undefined);
  }

  private stop(reason: "stop" | "length"): undefined {
    this.finishReason = reason;
    return undefined;
  }

  private cancel(): void {
    this.abandoned = true;
    this.context.poke();
  }

  private logprob(choice: SampleResult): (TokenLogprob & { top: TokenLogprob[] }) | undefined {
    if (choice.logprob === undefined) return undefined;
    return { ...this.describe({ token: choice.token, logprob: choice.logprob }), top: choice.top.map((t) => this.describe(t)) };
  }

  private describe(choice: TokenChoice): TokenLogprob {
    const bytes = this.context.tokenizer.tokenBytes(choice.token);
    return { token: new TextDecoder().decode(bytes), logprob: choice.logprob, bytes: Array.from(bytes) };
  }
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}
