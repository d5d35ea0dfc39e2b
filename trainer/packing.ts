/**
 * Sequence packing: where it helps, the examples of an optimizer step share rows instead of each
 * taking one row padded to the longest.
 *
 * A packed step: the step's examples packed first-fit, longest first, into rows of at most L input
 * tokens, L = the step's longest example (so no row is longer than the unpacked batch's), then split
 * into micro-batches of at most `microBatchSize` rows. The training graph then restricts attention to
 * each example's own tokens and restarts positions per example (training-graph.ts `packed`), so a
 * packed step has the unpacked step's loss and gradients (tests/trainer/packing.test.ts): the
 * accumulator weights micro-batches by counted tokens, whatever the rows hold.
 *
 * The rule ("auto"): pack when, over the first epoch's steps, the packed rows' cells (rows × row
 * length, what a step computes over: padding included) are at most (1 − PACKING_MIN_SAVING) of the
 * unpacked micro-batches' cells, i.e. packing cuts the padded work by at least a quarter. Examples of
 * similar length (little padding, few fit together) stay unpacked: the packed graph's extra mask work
 * and a different graph to compile would buy nothing. `true`/`false` force it.
 */
import { chunks, epochOrder, inputLength, makeBatch, makePackedBatch, packRows, type Batch, type EncodedExample } from "./dataset.ts";

/** The least share of the cells packing must save for "auto" to pack. */
export const PACKING_MIN_SAVING = 0.25;

export type PackingSetting = "auto" | boolean;

const longest = (examples: readonly EncodedExample[]) => Math.max(...examples.map(inputLength));

/** One step's examples as micro-batches: packed rows (see the header) or one example per row. */
export function stepBatches(step: readonly EncodedExample[], microBatchSize: number, padId: number, packed: boolean): Batch[] {
  if (!packed) return chunks(step, microBatchSize).map((micro) => makeBatch(micro, padId));
  return chunks(packRows(step, longest(step)), microBatchSize).map((rows) => makePackedBatch(rows, padId));
}

/** Cells (rows × length) of a step's micro-batches, unpacked and packed. */
export function stepCells(step: readonly EncodedExample[], microBatchSize: number): { unpacked: number; packed: number } {
  const unpacked = chunks(step, microBatchSize).reduce((n, micro) => n + micro.length * longest(micro), 0);
  const rows = packRows(step, longest(step)).map((row) => row.reduce((n, e) => n + inputLength(e), 0));
  const packed = chunks(rows, microBatchSize).reduce((n, micro) => n + micro.length * Math.max(...micro), 0);
  return { unpacked, packed };
}

/** Whether a run packs: the setting when forced, else the rule of the header over epoch 0's steps. */
export function choosePacking(setting: PackingSetting, examples: readonly EncodedExample[], seed: number, batchSize: number, microBatchSize: number): boolean {
  if (setting !== "auto") return setting;
  const order = epochOrder(examples.length, seed, 0).map((i) => examples[i]!);
  let unpacked = 0;
  let packed = 0;
  for (const step of chunks(order, batchSize)) {
    const cells = stepCells(step, microBatchSize);
    unpacked += cells.unpacked;
    packed += cells.packed;
  }
  return packed <= (1 - PACKING_MIN_SAVING) * unpacked;
}
