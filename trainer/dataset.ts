/**
 * Chat examples -> token ids with per-token loss weights -> left-padded training batches.
 *
 * Masks come from the model's own chat template: assistant turn k covers the tokens between
 *   render(messages[0..k), generation prompt)   and   render(messages[0..k], no generation prompt)
 * (each encoded as serving encodes a prompt), measured as common prefixes with the whole rendered
 * conversation, so a token that merges across the boundary is never counted twice. Only assistant
 * turns whose `weight` is not 0 count. When the conversation ends with an assistant turn and the
 * rendered text does not end with an EOS token, EOS is appended (and counted with that turn), so the
 * model learns to stop.
 *
 * Batches (the training graph's interface, services/model/llama/training-graph.ts):
 *   input_ids = ids[0..n-1) left-padded with `padId`;  attention_mask 1 on real tokens;
 *   position_ids count from the first real token (0 on padding, as serving's prefill);
 *   labels = ids[1..n) (next token), loss_weights = the weight of the predicted token, 0 on padding.
 * Packed batches (`packRows` + `makePackedBatch`, the graph's `segment_ids`): several examples share a
 * row, one after another from column 0 (right padding), segment ids 1, 2, ... per example and 0 on
 * padding, positions restarting at 0 in each example, labels and weights as above within each example
 * (an example's last input predicts its own last token, never the next example's first).
 * Invariants: every encoded example has at least one counted token and at most `maxLength` tokens;
 * the shuffle of an epoch depends only on (seed, epoch).
 */
import { createRandom } from "../services/inference/sampler.ts";
import type { ChatTemplate } from "../services/model/chat-template.ts";
import type { TextTokenizer } from "../services/model/tokenizer.ts";
import type { TrainingExample, TrainingMessage } from "../services/files/training-data.ts";

/** One parsed example of services/files/training-data.ts. */
export type ChatExample = TrainingExample;

export interface ChatEncoder {
  template: ChatTemplate;
  tokenizer: TextTokenizer;
  /** Appended after a final assistant turn that does not already end with it. */
  eosTokenId?: number;
}

export interface EncodedExample {
  ids: number[];
  /** weights[t]: 1 when token t is trained on (an assistant token), else 0. */
  weights: number[];
  truncated: boolean;
}

export interface Batch {
  batch: number;
  seq: number;
  inputIds: BigInt64Array;
  positionIds: BigInt64Array;
  attentionMask: BigInt64Array;
  labels: BigInt64Array;
  lossWeights: Float32Array;
  /** Packed rows only: the example (1, 2, ...; 0 = padding) of each token within its row. */
  segmentIds?: BigInt64Array;
  /** Real (non-padding) input tokens. */
  tokens: number;
  /** Σ loss_weights: the loss items of the batch (the accumulation weight). */
  items: number;
}

function encodeText(encoder: ChatEncoder, messages: TrainingMessage[], addGenerationPrompt: boolean): number[] {
  const text = encoder.template.render(messages.map(({ role, content }) => ({ role, content })), { addGenerationPrompt });
  return encoder.tokenizer.encode(text, { addSpecialTokens: encoder.template.encodeWithSpecialTokens });
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** The whole conversation's tokens and which of them are trained on (no truncation). */
export function encodeChat(messages: TrainingMessage[], encoder: ChatEncoder): { ids: number[]; weights: number[] } {
  const ids = encodeText(encoder, messages, false);
  const weights = ids.map(() => 0);
  const last = messages.length - 1;
  const eos = encoder.eosTokenId;
  const appendEos = messages[last]?.role === "assistant" && eos !== undefined && ids.at(-1) !== eos;
  if (appendEos) {
    ids.push(eos);
    weights.push(0);
  }
  messages.forEach((m, k) => {
    if (m.role !== "assistant" || m.weight === 0) return;
    const start = commonPrefix(encodeText(encoder, messages.slice(0, k), true), ids);
    const end = k === last ? ids.length : commonPrefix(encodeText(encoder, messages.slice(0, k + 1), false), ids);
    for (let t = start; t < end; t++) weights[t] = 1;
  });
  return { ids, weights };
}

/** An example ready to batch, truncated to `maxLength` tokens; undefined when nothing trainable is left. */
export function encodeExample(example: ChatExample, encoder: ChatEncoder, maxLength: number): EncodedExample | undefined {
  const { ids, weights } = encodeChat(example.messages, encoder);
  const truncated = ids.length > maxLength;
  const kept = { ids: ids.slice(0, maxLength), weights: weights.slice(0, maxLength), truncated };
  // Token 0 is never predicted (nothing precedes it), so a weight there does not count.
  return kept.weights.some((w, t) => t > 0 && w > 0) ? kept : undefined;
}

/** A batch of `batch` rows of `seq` padding tokens, nothing attended, counted or weighted yet. */
function emptyBatch(batch: number, seq: number, padId: number): Batch {
  const size = batch * seq;
  return {
    batch,
    seq,
    inputIds: new BigInt64Array(size).fill(BigInt(padId)),
    positionIds: new BigInt64Array(size),
    attentionMask: new BigInt64Array(size),
    labels: new BigInt64Array(size),
    lossWeights: new Float32Array(size),
    tokens: 0,
    items: 0,
  };
}

/** Left-padded batch of next-token predictions (see the header). */
export function makeBatch(examples: readonly EncodedExample[], padId: number): Batch {
  if (examples.length === 0) throw new Error("makeBatch: no examples");
  const batch = examples.length;
  const seq = Math.max(...examples.map((e) => e.ids.length - 1));
  if (seq < 1) throw new Error("makeBatch: every example needs at least two tokens");
  const out = emptyBatch(batch, seq, padId);
  examples.forEach((e, b) => {
    const n = e.ids.length - 1;
    const pad = seq - n;
    for (let t = 0; t < n; t++) {
      const at = b * seq + pad + t;
      out.inputIds[at] = BigInt(e.ids[t]!);
      out.positionIds[at] = BigInt(t);
      out.attentionMask[at] = 1n;
      out.labels[at] = BigInt(e.ids[t + 1]!);
      out.lossWeights[at] = e.weights[t + 1]!;
      out.items += e.weights[t + 1]!;
    }
    out.tokens += n;
  });
  return out;
}

/** Input tokens of an example in a batch: every id but the last (which is only a label). */
export const inputLength = (e: EncodedExample) => e.ids.length - 1;

/**
 * Packs examples into rows of at most `budget` input tokens: first fit, longest first (ties in the
 * given order), so the result depends only on the examples and their order. An example longer than
 * the budget gets a row of its own.
 */
export function packRows(examples: readonly EncodedExample[], budget: number): EncodedExample[][] {
  const byLength = examples.map((e, i) => ({ e, i })).sort((a, b) => inputLength(b.e) - inputLength(a.e) || a.i - b.i);
  const rows: { items: EncodedExample[]; used: number }[] = [];
  for (const { e } of byLength) {
    const n = inputLength(e);
    const row = rows.find((r) => r.used + n <= budget);
    if (row) {
      row.items.push(e);
      row.used += n;
    } else rows.push({ items: [e], used: n });
  }
  return rows.map((r) => r.items);
}

/** A batch of packed rows (see the header): each row's examples in order, segment ids from 1. */
export function makePackedBatch(rows: readonly (readonly EncodedExample[])[], padId: number): Batch {
  if (rows.length === 0 || rows.some((r) => r.length === 0)) throw new Error("makePackedBatch: empty row");
  const batch = rows.length;
  const seq = Math.max(...rows.map((r) => r.reduce((n, e) => n + inputLength(e), 0)));
  if (seq < 1) throw new Error("makePackedBatch: every example needs at least two tokens");
  const out: Batch = { ...emptyBatch(batch, seq, padId), segmentIds: new BigInt64Array(batch * seq) };
  rows.forEach((row, b) => {
    let at = b * seq;
    row.forEach((e, k) => {
      const n = inputLength(e);
      if (n < 1) throw new Error("makePackedBatch: every example needs at least two tokens");
      for (let t = 0; t < n; t++, at++) {
        out.inputIds[at] = BigInt(e.ids[t]!);
        out.positionIds[at] = BigInt(t);
        out.attentionMask[at] = 1n;
        out.segmentIds![at] = BigInt(k + 1);
        out.labels[at] = BigInt(e.ids[t + 1]!);
        out.lossWeights[at] = e.weights[t + 1]!;
        out.items += e.weights[t + 1]!;
      }
      out.tokens += n;
    });
  });
  return out;
}

/** A permutation of 0..n-1 for `epoch`, from the seed alone (Fisher-Yates over mulberry32). */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const random = createRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca77)) >>> 0);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Holds out 10% (at least 1) of `examples` for validation, chosen by the seed; needs at least 2 examples. */
export function holdOut<T>(examples: readonly T[], seed: number): { training: T[]; validation: T[] } {
  if (examples.length < 2) throw new Error("at least 2 training examples are needed to hold one out for validation");
  const count = Math.max(1, Math.round(examples.length * 0.1));
  const order = epochOrder(examples.length, seed ^ 0x5eed, -1);
  const held = new Set(order.slice(0, count));
  return { training: examples.filter((_, i) => !held.has(i)), validation: examples.filter((_, i) => held.has(i)) };
}

/** Consecutive chunks of at most `size` items. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
