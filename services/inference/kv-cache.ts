/**
 * The key/value cache of a batch of sequences, kept in preallocated buffers in the decoder
 * graph's layout: per layer one [rows, kvHeads, capacity, headDim] Float32Array for keys and one
 * for values, with a 0/1 mask [rows, capacity]. Columns [0, width) are in use and LEFT padded
 * (every row's newest token sits in column width - 1); columns from `width` on are free and
 * masked. A step writes its new keys/values into the next columns in place, so the buffers are fed
 * to the graph as they are, without a per-step copy of the cache. Capacity grows in chunks.
 * Rows join (merge) and leave (select) between steps, which copies the cache once.
 */

export interface CacheShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** Capacity grows in steps of this many columns (the attention over free columns is wasted work). */
const CAPACITY_CHUNK = 32;

export class BatchCache {
  private constructor(
    readonly shape: CacheShape,
    readonly rows: number,
    private used: number,
    private cap: number,
    /** [rows * capacity], 1n for a real token. */
    private maskData: BigInt64Array,
    private keyData: Float32Array[],
    private valueData: Float32Array[],
  ) {}

  static empty(shape: CacheShape, rows: number, capacity = CAPACITY_CHUNK): BatchCache {
    const layer = () => Array.from({ length: shape.numLayers }, () => new Float32Array(rows * shape.numKvHeads * capacity * shape.headDim));
    return new BatchCache(shape, rows, 0, capacity, new BigInt64Array(rows * capacity), layer(), layer());
  }

  /** Columns in use (the longest row's length, the others left padded). */
  get width(): number {
    return this.used;
  }
  get capacity(): number {
    return this.cap;
  }
  get mask(): BigInt64Array {
    return this.maskData;
  }
  keys(layer: number): Float32Array {
    return this.keyData[layer];
  }
  values(layer: number): Float32Array {
    return this.valueData[layer];
  }

  /** Real (unmasked) columns of a row: its sequence length so far. */
  length(row: number): number {
    let n = 0;
    for (let c = 0; c < this.used; c++) n += Number(this.maskData[row * this.cap + c]);
    return n;
  }

  /** Makes room for `columns` more columns, growing the buffers (one copy) if needed. */
  reserve(columns: number, maxCapacity = Infinity): void {
    const needed = this.used + columns;
    if (needed <= this.cap) return;
    const capacity = Math.max(needed, Math.min(maxCapacity, Math.ceil(needed / CAPACITY_CHUNK) * CAPACITY_CHUNK));
    const grown = BatchCache.empty(this.shape, this.rows, capacity);
    grown.used = this.used;
    for (let r = 0; r < this.rows; r++) copyRow(this, r, 0, grown, r, 0, this.used);
    this.cap = grown.cap;
    this.maskData = grown.maskData;
    this.keyData = grown.keyData;
    this.valueData = grown.valueData;
  }

  /**
   * Writes a step's new columns: `newMask` [rows * added], and per layer keys/values laid out
   * [rows, kvHeads, added, headDim] (what the graph returns). Call `reserve(added)` first.
   */
  append(newMask: BigInt64Array, added: number, keys: Float32Array[], values: Float32Array[]): void {
    if (this.used + added > this.cap) throw new Error(`cache capacity ${this.cap} exceeded; reserve first`);
    const { numKvHeads: heads, headDim } = this.shape;
    for (let r = 0; r < this.rows; r++) this.maskData.set(newMask.subarray(r * added, (r + 1) * added), r * this.cap + this.used);
    const span = added * headDim;
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (const [src, dst] of [
        [keys[l], this.keyData[l]],
        [values[l], this.valueData[l]],
      ]) {
        for (let rh = 0; rh < this.rows * heads; rh++) {
          const from = rh * span;
          const to = (rh * this.cap + this.used) * headDim;
          for (let i = 0; i < span; i++) dst[to + i] = src[from + i];
        }
      }
    }
    this.used += added;
  }

  /** A cache holding only the given rows (in that order), trimmed of all-padding leading columns. */
  select(rows: number[]): BatchCache {
    return BatchCache.gather(
      this.shape,
      rows.map((row) => ({ cache: this as BatchCache, row })),
    );
  }

  /** Rows of `a` followed by rows of `b`, re-padded on the left to a common width. */
  static merge(a: BatchCache, b: BatchCache): BatchCache {
    const pick = (cache: BatchCache) => Array.from({ length: cache.rows }, (_, row) => ({ cache, row }));
    return BatchCache.gather(a.shape, [...pick(a), ...pick(b)]);
  }

  private static gather(shape: CacheShape, sources: { cache: BatchCache; row: number }[]): BatchCache {
    // Keep each row's columns from its first real one; the widest row sets the width.
    const starts = sources.map(({ cache, row }) => cache.firstReal(row));
    const width = Math.max(0, ...sources.map(({ cache }, i) => cache.used - starts[i]));
    const out = BatchCache.empty(shape, sources.length, Math.max(CAPACITY_CHUNK, Math.ceil((width + 1) / CAPACITY_CHUNK) * CAPACITY_CHUNK));
    out.used = width;
    sources.forEach(({ cache, row }, i) => {
      const kept = cache.used - starts[i];
      copyRow(cache, row, starts[i], out, i, width - kept, kept);
    });
    return out;
  }

  private firstReal(row: number): number {
    for (let c = 0; c < this.used; c++) if (this.maskData[row * this.cap + c]) return c;
    return this.used;
  }
}

/** Copies `count` columns of one row (mask, keys, values) between caches. */
function copyRow(from: BatchCache, fromRow: number, fromColumn: number, to: BatchCache, toRow: number, toColumn: number, count: number): void {
  const { numKvHeads: heads, headDim, numLayers } = from.shape;
  const fromMask = fromRow * from.capacity + fromColumn;
  to.mask.set(from.mask.subarray(fromMask, fromMask + count), toRow * to.capacity + toColumn);
  for (let l = 0; l < numLayers; l++) {
    for (const [src, dst] of [
      [from.keys(l), to.keys(l)],
      [from.values(l), to.values(l)],
    ]) {
      for (let h = 0; h < heads; h++) {
        const s = ((fromRow * heads + h) * from.capacity + fromColumn) * headDim;
        const d = ((toRow * heads + h) * to.capacity + toColumn) * headDim;
        dst.set(src.subarray(s, s + count * headDim), d);
      }
    }
  }
}
