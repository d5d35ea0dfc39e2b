/**
 * Preference pairs -> token ids with answer masks -> DPO batches, and the rewards TRL reports.
 *
 * A pair is two conversations, the prompt followed by each answer as the assistant's turn, encoded as
 * SFT encodes examples (trainer/dataset.ts: the model's chat template, EOS appended after the answer and
 * counted); only the answer's tokens are counted (the prompt's own assistant turns, if any, get weight 0).
 * Both conversations are truncated to `maxLength`; a pair where either answer keeps no counted token is
 * dropped. A batch of P pairs has 2P rows: the chosen conversations, then the rejected ones, in pair order
 * (services/model/llama/preference-loss.ts).
 *
 * Rewards (TRL's DPOTrainer): chosen = β·(π_c − ref_c), rejected = β·(π_r − ref_r), margin = chosen −
 * rejected, accuracy = [chosen > rejected]; the loss per pair is −log σ(margin) (sigmoid) or
 * (margin/β − 1/(2β))² (IPO); each reported as a mean over pairs.
 */
import { withAnswer, type PreferenceExample } from "../../services/files/preference-data.ts";
import type { PreferenceLossType } from "../../services/model/llama/preference-loss.ts";
import { encodeExample, makeBatch, type Batch, type ChatEncoder, type EncodedExample } from "../dataset.ts";

export interface EncodedPair {
  chosen: EncodedExample;
  rejected: EncodedExample;
  /** Index in the prepared set (the key of its reference log-probabilities). */
  index: number;
}

/** One pair as two encoded conversations; undefined when an answer keeps no counted token within `maxLength`. */
export function encodePair(example: PreferenceExample, encoder: ChatEncoder, maxLength: number, index: number): EncodedPair | undefined {
  const prompt = example.messages.map((m) => (m.role === "assistant" ? { ...m, weight: 0 as const } : m));
  const encode = (answer: string) => encodeExample({ line: example.line, messages: withAnswer({ messages: prompt }, answer) }, encoder, maxLength);
  const chosen = encode(example.chosen);
  const rejected = encode(example.rejected);
  return chosen && rejected ? { chosen, rejected, index } : undefined;
}

/** The 2P-row batch of `pairs` (chosen rows first). */
export function makePairBatch(pairs: readonly EncodedPair[], padId: number): Batch {
  return makeBatch([...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)], padId);
}

/** Reference log-probabilities of the batch's rows in its row order, from per-pair arrays. */
export function refRows(pairs: readonly EncodedPair[], ref: { chosen: Float64Array; rejected: Float64Array }): Float32Array {
  return Float32Array.from([...pairs.map((p) => ref.chosen[p.index]!), ...pairs.map((p) => ref.rejected[p.index]!)]);
}

/** Sums over pairs (divide by `pairs` for TRL's means). */
export interface RewardSums {
  pairs: number;
  loss: number;
  chosen: number;
  rejected: number;
  margins: number;
  accuracies: number;
}

export const emptyRewards = (): RewardSums => ({ pairs: 0, loss: 0, chosen: 0, rejected: 0, margins: 0, accuracies: 0 });

/** Adds a batch's pairs: `policy` and `ref` are its 2P rows' log-probabilities (chosen rows first). */
export function addRewards(sums: RewardSums, policy: ArrayLike<number>, ref: ArrayLike<number>, beta: number, lossType: PreferenceLossType): RewardSums {
  const P = policy.length / 2;
  for (let p = 0; p < P; p++) {
    const chosen = beta * (policy[p]! - ref[p]!);
    const rejected = beta * (policy[p + P]! - ref[p + P]!);
    const margin = chosen - rejected;
    sums.pairs++;
    sums.chosen += chosen;
    sums.rejected += rejected;
    sums.margins += margin;
    sums.accuracies += chosen > rejected ? 1 : 0;
    sums.loss += lossType === "ipo" ? (margin / beta - 1 / (2 * beta)) ** 2 : softplus(-margin);
  }
  return sums;
}

/** log(1 + e^x), exact in float64 at both ends. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** TRL's names, means over the pairs; `prefix` "eval_" for validation. */
export function rewardMetrics(s: RewardSums, prefix = ""): Record<string, number> {
  const n = Math.max(1, s.pairs);
  return {
    [`${prefix}rewards/chosen`]: s.chosen / n,
    [`${prefix}rewards/rejected`]: s.rejected / n,
    [`${prefix}rewards/margins`]: s.margins / n,
    [`${prefix}rewards/accuracies`]: s.accuracies / n,
  };
}
