import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import hnswlib from "hnswlib-node";

export interface HnswParams {
  /** Graph degree. */
  m: number;
  efConstruction: number;
  /** Search breadth; raised to k when k is larger. */
  efSearch: number;
}

export const DEFAULT_HNSW: HnswParams = { m: 24, efConstruction: 200, efSearch: 256 };

/** Written next to the index so a reload knows which model made the vectors. */
interface IndexManifest {
  embedderId: string;
  dimension: number;
  params: HnswParams;
}

export interface VectorHit {
  label: number;
  /** Cosine similarity. */
  score: number;
}

/**
 * One tenant's cosine HNSW index. Labels are chunk ids. Deletions are marks (hnswlib keeps the
 * slot); `live` is the set of searchable labels.
 */
export class VectorIndex {
  private readonly index: hnswlib.HierarchicalNSW;
  private readonly live = new Set<number>();
  private readonly marked = new Set<number>();

  private constructor(
    readonly embedderId: string,
    readonly dimension: number,
    readonly params: HnswParams,
  ) {
    this.index = new hnswlib.HierarchicalNSW("cosine", dimension);
  }

  static create(embedderId: string, dimension: number, params: HnswParams = DEFAULT_HNSW, capacity = 1024): VectorIndex {
    const vi = new VectorIndex(embedderId, dimension, params);
    vi.index.initIndex({ maxElements: capacity, m: params.m, efConstruction: params.efConstruction, randomSeed: 100 });
    vi.index.setEf(params.efSearch);
    return vi;
  }

  /**
   * Loads `path` (and its manifest); null when absent, unreadable, or made by another embedder or
   * dimension: the caller then rebuilds from the stored chunks.
   */
  static load(path: string, embedderId: string, dimension: number): VectorIndex | null {
    const manifestPath = `${path}.json`;
    if (!existsSync(path) || !existsSync(manifestPath)) return null;
    let manifest: IndexManifest;
    try {
      manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as IndexManifest;
    } catch {
      return null;
    }
    if (manifest.embedderId !== embedderId || manifest.dimension !== dimension) return null;
    const vi = new VectorIndex(embedderId, dimension, manifest.params);
    try {
      vi.index.readIndexSync(path);
    } catch {
      return null;
    }
    vi.index.setEf(manifest.params.efSearch);
    // Marks survive in the file but hnswlib cannot list them; the caller re-marks via `retainOnly`.
    for (const label of vi.index.getIdsList()) vi.live.add(label);
    return vi;
  }

  get size(): number {
    return this.live.size;
  }

  labels(): number[] {
    return [...this.live];
  }

  has(label: number): boolean {
    return this.live.has(label);
  }

  add(label: number, vector: Float32Array): void {
    if (vector.length !== this.dimension) throw new Error(`vector has ${vector.length} dimensions, index has ${this.dimension}`);
    if (this.live.has(label)) return;
    const needed = this.index.getCurrentCount() + 1;
    if (needed > this.index.getMaxElements()) this.index.resizeIndex(Math.max(1024, this.index.getMaxElements() * 2));
    if (this.marked.has(label)) {
      this.index.unmarkDelete(label);
      this.marked.delete(label);
    }
    this.index.addPoint(Array.from(vector), label);
    this.live.add(label);
  }

  remove(label: number): void {
    if (!this.live.delete(label)) return;
    this.markDeleted(label);
  }

  /** Removes every label not in `keep` (orphans left by a crash between the database and the index). */
  retainOnly(keep: Set<number>): number[] {
    const orphans = [...this.live].filter((l) => !keep.has(l));
    for (const label of orphans) this.remove(label);
    return orphans;
  }

  /** Nearest live labels; `allow` restricts the candidates (document and metadata filters). */
  search(query: Float32Array, k: number, allow?: (label: number) => boolean, ef = this.params.efSearch): VectorHit[] {
    const n = Math.min(k, this.live.size);
    if (n === 0) return [];
    this.index.setEf(Math.max(ef, n));
    // hnswlib skips marked (deleted) points itself; a JS filter costs a call per visited node.
    const { neighbors, distances } = allow
      ? this.index.searchKnn(Array.from(query), n, allow)
      : this.index.searchKnn(Array.from(query), n);
    return neighbors.map((label, i) => ({ label, score: 1 - distances[i] }));
  }

  /** Exact cosine search over `labels` (cheap for small filtered sets, and the reference for recall). */
  searchExact(query: Float32Array, k: number, labels: Iterable<number>): VectorHit[] {
    const hits: VectorHit[] = [];
    for (const label of labels) {
      if (!this.live.has(label)) continue;
      hits.push({ label, score: cosine(query, this.index.getPoint(label)) });
    }
    return hits.sort((a, b) => b.score - a.score).slice(0, k);
  }

  /** Writes to a temp file, fsyncs it and renames it over `path`, so a crash leaves the old or the new file. */
  save(path: string): void {
    const manifest: IndexManifest = { embedderId: this.embedderId, dimension: this.dimension, params: this.params };
    const tmp = `${path}.tmp-${process.pid}`;
    this.index.writeIndexSync(tmp);
    fsyncFile(tmp);
    writeFileSync(`${tmp}.json`, JSON.stringify(manifest));
    fsyncFile(`${tmp}.json`);
    renameSync(tmp, path);
    renameSync(`${tmp}.json`, `${path}.json`);
    fsyncFile(dirname(path));
  }

  static remove(path: string): void {
    rmSync(path, { force: true });
    rmSync(`${path}.json`, { force: true });
  }

  private markDeleted(label: number): void {
    if (this.marked.has(label)) return;
    try {
      this.index.markDelete(label);
    } catch {
      // Already marked in a reloaded file: hnswlib does not expose its marks, so this is how we learn it.
    }
    this.marked.add(label);
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function cosine(a: Float32Array, b: number[]): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na * nb) || 1);
}
