/**
 * Resumable training state: what `trainLora` needs to continue a run bit-identically after its process
 * died, as one safetensors file per checkpoint.
 *
 * File: `step-<NNNNNNNN>.safetensors` under a job's folder (`<data dir>/training/<job id>/`). Tensors
 * `p.{i}` (the LoRA parameters in optimizer order: A, B per module), `best.{i}` (the best evaluation's
 * parameters), `m.{i}` / `v.{i}` (AdamW's moments); `__metadata__` holds `format`, the JSON header
 * (`state`: job id, request fingerprint, step, data position, best tracker, history, ...) and
 * `sha256` / `data_bytes` of the tensor section.
 *
 * Invariants: a file is written whole or not at all (temporary name, fsync, rename, fsync of the
 * folder), so a crash leaves the previous checkpoints intact; a file that is truncated, fails its
 * checksum or does not parse is ignored (`latest` falls back to the previous one, else to nothing: a
 * run from scratch); `keep` (default 2) newest files are kept, older ones deleted after each write.
 * There is no RNG state beyond the seed: the split, the init and every epoch's order are functions of
 * the seed (and epoch), so the data position (epoch, steps done in it) is the whole data state.
 */
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseSafetensorsBytes, writeSafetensors, type TensorToWrite } from "../services/model/safetensors.ts";
import type { AdamWState } from "./optim/adamw.ts";

export const CHECKPOINT_FORMAT = "switchyard.train-state.v1";

/** One evaluation of the run (the metrics a servable checkpoint reports). */
export interface EvaluationRecord {
  step: number;
  validLoss: number;
  tokenAccuracy: number;
  /** The training loss of that step (undefined for step 0, the base model). */
  trainLoss?: number;
}

/** A validation loss and token accuracy. */
export interface Score {
  loss: number;
  tokenAccuracy: number;
}

/** BestTracker's state. */
export interface BestState {
  /** Step 0's evaluation, and the best one (at `step`). */
  base: Score;
  best: Score;
  step: number;
  /** Evaluations without improvement since the best. */
  worse: number;
  stopped: boolean;
  /** The best parameters, in optimizer order. */
  params: Float32Array[];
}

/** Everything a resumed `trainLora` continues from. */
export interface TrainCheckpoint {
  /** `requestFingerprint` of the run that wrote it: same data, hyperparameters, seed and model. */
  fingerprint: string;
  /** Optimizer steps done. */
  step: number;
  /** The epoch of the next step, and how many of its steps are done. */
  epoch: number;
  stepInEpoch: number;
  trainedTokens: number;
  /** Module keys in parameter order (each gives two parameters, A then B). */
  modules: string[];
  /** The current parameters, in optimizer order. */
  params: Float32Array[];
  optimizer: AdamWState;
  best: BestState;
  history: EvaluationRecord[];
}

/** A checkpoint as stored: the state and the job it belongs to. */
export interface StoredCheckpoint {
  jobId: string;
  state: TrainCheckpoint;
}

type Header = Omit<TrainCheckpoint, "params" | "optimizer" | "best"> & { jobId: string; count: number; optimizerStep: number; best: Omit<BestState, "params"> };

export function encodeCheckpoint(jobId: string, state: TrainCheckpoint): Uint8Array {
  const count = state.params.length;
  if (state.best.params.length !== count || state.optimizer.m.length !== count || state.optimizer.v.length !== count) throw new Error("checkpoint: parameters, best parameters and moments differ in count");
  const tensors: Record<string, TensorToWrite> = {};
  const add = (name: string, data: Float32Array) => (tensors[name] = { dtype: "F32", shape: [data.length], data });
  state.params.forEach((p, i) => add(`p.${i}`, p));
  state.best.params.forEach((p, i) => add(`best.${i}`, p));
  state.optimizer.m.forEach((p, i) => add(`m.${i}`, p));
  state.optimizer.v.forEach((p, i) => add(`v.${i}`, p));
  const { params: _p, optimizer, best, ...rest } = state;
  const { params: _b, ...bestScalars } = best;
  const header: Header = { ...rest, jobId, count, optimizerStep: optimizer.step, best: bestScalars };
  // The checksum covers the tensor section; written once to learn where it starts, then with the sum.
  const draft = writeSafetensors(tensors, metadata(header, "0".repeat(64), 0));
  const dataBytes = draft.byteLength - dataStart(draft);
  const sum = sha256(draft.subarray(dataStart(draft)));
  const out = writeSafetensors(tensors, metadata(header, sum, dataBytes));
  if (out.byteLength - dataStart(out) !== dataBytes) throw new Error("checkpoint: header size changed while encoding");
  return out;
}

function metadata(header: Header, sum: string, dataBytes: number): Record<string, string> {
  return { format: CHECKPOINT_FORMAT, state: JSON.stringify(header), sha256: sum, data_bytes: String(dataBytes).padStart(16, "0") };
}

/** Decodes and verifies a checkpoint file; throws on anything truncated, corrupt or of another format. */
export function decodeCheckpoint(bytes: Uint8Array): StoredCheckpoint {
  if (bytes.byteLength < 8) throw new Error("checkpoint: shorter than a safetensors header");
  const start = dataStart(bytes);
  if (start > bytes.byteLength) throw new Error("checkpoint: truncated header");
  const meta = headerMetadata(bytes, start);
  if (meta.format !== CHECKPOINT_FORMAT) throw new Error(`checkpoint: format ${String(meta.format)}, expected ${CHECKPOINT_FORMAT}`);
  if (Number(meta.data_bytes) !== bytes.byteLength - start) throw new Error(`checkpoint: ${bytes.byteLength - start} data bytes, expected ${Number(meta.data_bytes)} (truncated?)`);
  if (sha256(bytes.subarray(start)) !== meta.sha256) throw new Error("checkpoint: checksum mismatch");
  const header = JSON.parse(meta.state ?? "") as Header;
  const store = parseSafetensorsBytes(bytes, "checkpoint");
  try {
    const read = (part: string) => Array.from({ length: header.count }, (_, i) => store.getF32(`${part}.${i}`) as Float32Array);
    const { jobId, count: _c, optimizerStep, best, ...rest } = header;
    return { jobId, state: { ...rest, params: read("p"), optimizer: { step: optimizerStep, m: read("m"), v: read("v") }, best: { ...best, params: read("best") } } };
  } finally {
    store.close();
  }
}

function dataStart(bytes: Uint8Array): number {
  return 8 + Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
}

function headerMetadata(bytes: Uint8Array, start: number): Record<string, string> {
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, start))) as { __metadata__?: Record<string, string> };
  return header.__metadata__ ?? {};
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * What a checkpoint must match to be resumed: sha256 over a canonical JSON of the request's data,
 * hyperparameters, seed and model (the caller passes what defines the run).
 */
export function requestFingerprint(parts: Record<string, unknown>): string {
  return sha256(new TextEncoder().encode(canonicalJson(parts)));
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(fd, bytes, written, bytes.byteLength - written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(join(path, ".."));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const FILE = /^step-(\d{8})\.safetensors$/;

/** One job's checkpoint folder. */
export class CheckpointDir {
  constructor(
    readonly dir: string,
    readonly jobId: string,
    private readonly keep = 2,
  ) {}

  /** Writes the state atomically, then deletes all but the `keep` newest checkpoints (and stray temporaries). */
  write(state: TrainCheckpoint): string {
    mkdirSync(this.dir, { recursive: true });
    const path = join(this.dir, `step-${String(state.step).padStart(8, "0")}.safetensors`);
    writeFileAtomic(path, encodeCheckpoint(this.jobId, state));
    const names = readdirSync(this.dir);
    for (const stale of this.steps(names).slice(this.keep)) rmSync(join(this.dir, stale.name), { force: true });
    for (const name of names) if (name.includes(".tmp-")) rmSync(join(this.dir, name), { force: true });
    return path;
  }

  /**
   * The newest checkpoint that reads back whole and belongs to this job; every file skipped is
   * reported to `onInvalid` (with why). undefined when there is none (train from scratch).
   */
  latest(onInvalid?: (file: string, reason: string) => void): TrainCheckpoint | undefined {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return undefined;
    }
    for (const { name } of this.steps(names)) {
      try {
        const stored = decodeCheckpoint(readFileSync(join(this.dir, name)));
        if (stored.jobId !== this.jobId) throw new Error(`checkpoint of job ${stored.jobId}, not ${this.jobId}`);
        return stored.state;
      } catch (e) {
        onInvalid?.(name, e instanceof Error ? e.message : String(e));
      }
    }
    return undefined;
  }

  /** Deletes the folder (the job finished). */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Checkpoint files, newest first. */
  private steps(names: string[]): { name: string; step: number }[] {
    return names
      .map((name) => ({ name, m: FILE.exec(name) }))
      .filter((f) => f.m)
      .map((f) => ({ name: f.name, step: Number(f.m![1]) }))
      .sort((a, b) => b.step - a.step);
  }
}
