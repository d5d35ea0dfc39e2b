/**
 * The key/value cache of a batch of sequences, kept in preallocated buffers in the decoder
 * graph's layout: per layer one [rows, kvHeads, capacity, headDim] Float32Array for keys and one
 * for values, with a 0/1 mask [rows, capacity]. The graph is fed prefixes of these buffers as they
 * are (no per-step copy); a step writes its new keys/values into the next free column in place.
 *
 * Columns [0, width) are in use. A row's tokens need not be contiguous or right-aligned: the graph
 * masks padding and is causal on column order, and positions are explicit, so a row may have
 * leading padding or masked holes. That is what makes joins and leaves cheap:
 * - `join` copies only the joining rows (a longer newcomer just widens the batch);
 * - `removeRows` moves the last rows into the holes, one row copy each, and re-lays the batch out
 *   compactly once a chunk of columns is padding in every row;
 * - capacity grows in chunks (columns) or doubles (rows), copying the cache once.
 * `select` and `merge` are the copying forms (fresh, compact caches).
 *
 * Isolation invariant: a row holds nothing but its own sequence's keys and values; every other
 * column of it (padding, holes, columns past the width) is zero. Masking alone cannot isolate
 * rows: the graph adds a large negative bias to masked scores and multiplies masked values by a
 * zero weight, and both turn a stale NaN or infinity into NaN for the row that sees it. So a row is
 * zeroed whole before a newcomer takes it (`join`), and every other path either copies over the
 * whole in-use span or starts from fresh (zeroed) buffers.
 */

export interface CacheShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** Columns are added in chunks of this many (attention over free columns is wasted work). */
const COLUMN_CHUNK = 32;

export class BatchCache {
  private constructor(
    readonly shape: CacheShape,
    private rowCount: number,
    private rowCapacity: number,
    private used: number,
    private cap: number,
    /** [rowCapacity * capacity], 1n for a real token. */
    private maskData: BigInt64Array,
    private keyData: Float32Array[],
    private valueData: Float32Array[],
  ) {}

  /** Bumped by every change but `append` (buffers, rows, capacity, columns moved), so feeds built on the layout can be kept until it changes. */
  private layoutVersion = 0;

  static empty(shape: CacheShape, rows: number, capacity = COLUMN_CHUNK, rowCapacity = rows): BatchCache {
    const size = Math.max(rows, rowCapacity) * shape.numKvHeads * capacity * shape.headDim;
    const layer = () => Array.from({ length: shape.numLayers }, () => new Float32Array(size));
    return new BatchCache(shape, rows, Math.max(rows, rowCapacity), 0, capacity, new BigInt64Array(Math.max(rows, rowCapacity) * capacity), layer(), layer());
  }

  get rows(): number {
    return this.rowCount;
  }
  /** Columns in use. */
  get width(): number {
    return this.used;
  }
  /** Unchanged while only `append` ran: the buffers, rows and columns in use before it are where they were. */
  get layout(): number {
    return this.layoutVersion;
  }
  /** Columns allocated per row (the past length the graph sees). */
  get capacity(): number {
    return this.cap;
  }
  /** [rows, capacity] */
  get mask(): BigInt64Array {
    return this.maskData.subarray(0, this.rowCount * this.cap);
  }
  /** [rows, kvHeads, capacity, headDim] */
  keys(layer: number): Float32Array {
    return this.keyData[layer].subarray(0, this.rowSize * this.rowCount);
  }
  values(layer: number): Float32Array {
    return this.valueData[layer].subarray(0, this.rowSize * this.rowCount);
  }

  /** Bytes the buffers hold (allocated, in use or not). */
  get bytes(): number {
    return this.maskData.byteLength + [...this.keyData, ...this.valueData].reduce((sum, b) => sum + b.byteLength, 0);
  }

  private get rowSize(): number {
    return this.shape.numKvHeads * this.cap * this.shape.headDim;
  }

  /** Real (unmasked) columns of a row: its sequence length so far. */
  length(row: number): number {
    let n = 0;
    for (let c = 0; c < this.used; c++) n += Number(this.maskData[row * this.cap + c]);
    return n;
  }

  /** Makes room for `columns` more columns (and `rows` rows in all), growing the buffers if needed. */
  reserve(columns: number, rows = this.rowCount): void {
    const needed = this.used + columns;
    if (needed <= this.cap && rows <= this.rowCapacity) return;
    const capacity = needed <= this.cap ? this.cap : Math.ceil(needed / COLUMN_CHUNK) * COLUMN_CHUNK;
    const rowCapacity = rows <= this.rowCapacity ? this.rowCapacity : Math.max(rows, 2 * this.rowCapacity);
    this.layoutVersion++;
    const grown = BatchCache.empty(this.shape, this.rowCount, capacity, rowCapacity);
    for (let r = 0; r < this.rowCount; r++) copyRow(this, r, 0, grown, r, 0, this.used);
    this.rowCapacity = grown.rowCapacity;
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
    for (let r = 0; r < this.rowCount; r++) this.maskData.set(newMask.subarray(r * added, (r + 1) * added), r * this.cap + this.used);
    for (let l = 0; l < this.shape.numLayers; l++) {
      this.writeColumns(keys[l], this.keyData[l], added, heads, headDim);
      this.writeColumns(values[l], this.valueData[l], added, heads, headDim);
    }
    this.used += added;
  }

  /** Copies [rows, heads, added, headDim] into the columns from `used` of one layer's buffer. */
  private writeColumns(src: Float32Array, dst: Float32Array, added: number, heads: number, headDim: number): void {
    const span = added * headDim;
    for (let rh = 0; rh < this.rowCount * heads; rh++) {
      const from = rh * span;
      const to = (rh * this.cap + this.used) * headDim;
      for (let i = 0; i < span; i++) dst[to + i] = src[from + i];
    }
  }

  /** Appends the rows of `other` in place: each keeps its columns, right-aligned to the width. */
  join(other: BatchCache): void {
    const spans = Array.from({ length: other.rows }, (_, r) => {
      const start = other.firstReal(r);
      return { row: r, start, count: other.used - start };
    });
    const width = Math.max(this.used, ...spans.map((s) => s.count));
    this.reserve(width - this.used, this.rowCount + other.rows);
    this.layoutVersion++;
    this.used = width;
    for (const { row, start, count } of spans) {
      const to = this.rowCount++;
      this.clearRow(to);
      copyRow(other, row, start, this, to, width - count, count);
    }
  }

  /**
   * Removes rows in place by moving the last rows into their places. Returns, for each row of the
   * result, the index it had before (so callers can reorder their per-row state the same way).
   */
  removeRows(remove: number[]): number[] {
    const order = Array.from({ length: this.rowCount }, (_, i) => i);
    if (remove.length) this.layoutVersion++;
    for (const row of [...new Set(remove)].sort((a, b) => b - a)) {
      const last = this.rowCount - 1;
      if (row !== last) {
        copyRow(this, last, 0, this, row, 0, this.used);
        order[row] = order[last];
      }
      order.pop();
      this.rowCount--;
    }
    if (this.rowCount === 0) this.used = 0;
    else this.compactIfWasteful();
    return order;
  }

  /** A fresh compact cache holding only the given rows (in that order). */
  select(rows: number[]): BatchCache {
    return BatchCache.gather(
      this.shape,
      rows.map((row) => ({ cache: this as BatchCache, row })),
    );
  }

  /** A fresh compact cache with the rows of `a` followed by the rows of `b`. */
  static merge(a: BatchCache, b: BatchCache): BatchCache {
    const pick = (cache: BatchCache) => Array.from({ length: cache.rows }, (_, row) => ({ cache, row }));
    return BatchCache.gather(a.shape, [...pick(a), ...pick(b)]);
  }

  private static gather(shape: CacheShape, sources: { cache: BatchCache; row: number }[]): BatchCache {
    const out = BatchCache.empty(shape, 0, COLUMN_CHUNK, sources.length);
    for (const { cache, row } of sources) out.join(cache.select1(row));
    return out;
  }

  /** A view-free one-row copy of `row` (its columns from the first real one). */
  private select1(row: number): BatchCache {
    const start = this.firstReal(row);
    const count = this.used - start;
    const out = BatchCache.empty(this.shape, 1, Math.max(COLUMN_CHUNK, Math.ceil(count / COLUMN_CHUNK) * COLUMN_CHUNK));
    out.used = count;
    copyRow(this, row, start, out, 0, 0, count);
    return out;
  }

  /**
   * Re-lays the rows out without padding columns (each row's real columns in order, right-aligned)
   * once at least a chunk of columns is padding in every row: leaves and widening joins leave holes.
   */
  private compactIfWasteful(): void {
    const runs = Array.from({ length: this.rowCount }, (_, r) => this.realRuns(r));
    const lengths = runs.map((rowRuns) => rowRuns.reduce((n, run) => n + run.count, 0));
    const width = Math.max(...lengths);
    if (this.used - width < COLUMN_CHUNK) return;
    const capacity = Math.max(COLUMN_CHUNK, Math.ceil(width / COLUMN_CHUNK) * COLUMN_CHUNK);
    this.layoutVersion++;
    const compact = BatchCache.empty(this.shape, this.rowCount, capacity, this.rowCapacity);
    runs.forEach((rowRuns, r) => {
      let to = width - lengths[r];
      for (const run of rowRuns) {
        copyRow(this, r, run.start, compact, r, to, run.count);
        to += run.count;
      }
    });
    this.cap = compact.cap;
    this.used = width;
    this.maskData = compact.maskData;
    this.keyData = compact.keyData;
    this.valueData = compact.valueData;
  }

  /** Maximal runs of consecutive real columns of a row. */
  private realRuns(row: number): { start: number; count: number }[] {
    const runs: { start: number; count: number }[] = [];
    for (let c = 0; c < this.used; c++) {
      if (!this.maskData[row * this.cap + c]) continue;
      const last = runs.at(-1);
      if (last && last.start + last.count === c) last.count++;
      else runs.push({ start: c, count: 1 });
    }
    return runs;
  }

  /** Zeroes a row whole (mask, keys, values) so that a newcomer never sees a previous occupant's data. */
  private clearRow(row: number): void {
    this.maskData.fill(0n, row * this.cap, (row + 1) * this.cap);
    const size = this.rowSize;
    for (let l = 0; l < this.shape.numLayers; l++) {
      this.keyData[l].fill(0, row * size, (row + 1) * size);
      this.valueData[l].fill(0, row * size, (row + 1) * size);
    }
  }

  private firstReal(row: number): number {
    for (let c = 0; c < this.used; c++) if (this.maskData[row * this.cap + c]) return c;
    return this.used;
  }
}

/** Copies `count` columns of one row (mask, keys, values); overlapping moves within a row go left. */
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
