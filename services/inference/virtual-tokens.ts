/**
 * The virtual tokens of a prefill step (prompt tuning, services/model/prompt-tuning.ts): the step's
 * distinct prompt-tuning adapters stacked into one `virtual_embeddings` table, and each row's full
 * sequence (N virtual tokens, then its prompt) as the ids a chunk of it feeds.
 */
import type { PromptWeights } from "../model/prompt-tuning.ts";

export interface VirtualTable {
  /** [E, hidden] row-major, E = the distinct adapters' virtual tokens summed. */
  embeddings: Float32Array;
  /** Each row's first virtual id (vocab + its adapter's first row in the table); undefined: no adapter. */
  firstIds: Array<number | undefined>;
}

/** The table for rows that feed virtual tokens this step (undefined where a row feeds none); none when no row does. */
export function virtualTable(rows: Array<PromptWeights | undefined>, vocabSize: number, hiddenSize: number): VirtualTable | undefined {
  if (!rows.some((p) => p)) return undefined;
  const startOf = new Map<PromptWeights, number>();
  let total = 0;
  for (const p of rows) {
    if (!p || startOf.has(p)) continue;
    startOf.set(p, total);
    total += p.numVirtualTokens;
  }
  const embeddings = new Float32Array(total * hiddenSize);
  for (const [p, start] of startOf) embeddings.set(p.embeddings, start * hiddenSize);
  return { embeddings, firstIds: rows.map((p) => (p ? vocabSize + startOf.get(p)! : undefined)) };
}

/**
 * Tokens [from, from + count) of a sequence of `virtual` virtual tokens then `prompt`: virtual token
 * k is `firstId + k` (firstId is needed when the range starts among the virtual tokens).
 */
export function sequenceSlice(prompt: number[], virtual: number, from: number, count: number, firstId: number | undefined): number[] {
  const end = Math.min(virtual + prompt.length, from + count);
  const out: number[] = [];
  for (let q = from; q < end; q++) {
    if (q >= virtual) out.push(prompt[q - virtual]!);
    else if (firstId === undefined) throw new Error("a virtual token without its adapter's embeddings");
    else out.push(firstId + q);
  }
  return out;
}
