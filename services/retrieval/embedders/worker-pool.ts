import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { loadTokenizer } from "../../model/tokenizer.ts";
import type { Embedder } from "../types.ts";
import type { OnnxEncoderOptions } from "./onnx-encoder.ts";
import { UnigramTokenizer, type UnigramVocab } from "./sentencepiece.ts";
import { useLiteModelDir, type UseLiteOptions } from "./use-lite.ts";

/** Embedding threads when not configured: one per core, at most 4 (each holds a copy of the model). */
export const DEFAULT_EMBED_THREADS = Math.min(4, availableParallelism());

/** Which embedder a worker builds: plain data, so it crosses to the thread. */
export type EmbedderSpec = { kind: "use-lite"; options: UseLiteOptions } | { kind: "onnx"; dir: string; options: OnnxEncoderOptions };

export interface WorkerRequest {
  seq: number;
  texts: string[];
}
export type WorkerReply =
  | { type: "ready"; id: string; dimension: number; maxTokens?: number }
  | { type: "failed"; message: string }
  | { type: "done"; seq: number; vectors: Float32Array[] }
  | { type: "error"; seq: number; message: string };

const WORKER_PATH = fileURLToPath(new URL("./embed-worker.mjs", import.meta.url));

interface Thread {
  worker: Worker;
  pending: Map<number, { resolve: (v: Float32Array[]) => void; reject: (e: Error) => void }>;
}

/** Below this many texts per thread, splitting a call costs more in messages than it saves. */
const MIN_TEXTS_PER_THREAD = 8;

/**
 * An embedder whose model runs on worker threads, so that embedding (tokenising, the ONNX run,
 * pooling) never holds the HTTP event loop: ingestion and query embedding alike. A call of many
 * texts is split into contiguous parts, one per thread (at least MIN_TEXTS_PER_THREAD texts each),
 * so one ingestion keeps every thread busy; each part goes to the thread with the fewest calls in
 * flight, and each thread runs its calls one after another (one onnxruntime thread each).
 * One thread starts with the pool; the others (each loads its own copy of the model, about 2 CPU-s)
 * start at the first call large enough to split, and take work once they are ready: a platform
 * that only answers queries never pays for them.
 * Token counting (chunk sizing, synchronous) stays here with a copy of the tokenizer only.
 * A thread that dies fails its calls in flight and is replaced at the next call.
 * `close` lets calls in flight and threads still loading finish before it stops the threads: terminating a
 * thread while onnxruntime works for it aborts the whole process (a Napi::Error thrown past the addon).
 */
export async function createWorkerEmbedder(spec: EmbedderSpec, threads = 1): Promise<Embedder & { readyThreads(): number }> {
  const countTokens = await tokenCounter(spec);
  const first = startThread(spec);
  const { id, dimension, maxTokens } = await first.ready;
  const pool = [first.thread];
  const spares = new Set<Thread>();
  /** Calls in flight and spares loading: what `close` waits for. */
  const busy = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    const settled = work.then(() => {}, () => {}).finally(() => busy.delete(settled));
    busy.add(settled);
    return work;
  };
  let seq = 0;
  let closed = false;
  let growing = false;
  const grow = () => {
    if (growing || pool.length >= threads) return;
    growing = true;
    for (let n = pool.length; n < threads; n++) {
      const { thread, ready } = startThread(spec);
      spares.add(thread);
      // A spare that cannot start leaves the pool as it is (the first thread loaded the same model).
      track(ready.then(() => pool.push(thread), () => {}).finally(() => spares.delete(thread)));
    }
  };
  /** The thread is chosen before the first await, so the parts of one call spread over the pool. */
  const dispatch = async (texts: string[]): Promise<Float32Array[]> => {
    let i = pool.reduce((best, t, j) => (t.pending.size < pool[best].pending.size ? j : best), 0);
    if (pool[i].worker.threadId === -1) {
      const fresh = startThread(spec);
      await fresh.ready;
      pool[i] = fresh.thread;
    }
    const thread = pool[i];
    const n = ++seq;
    return new Promise<Float32Array[]>((resolve, reject) => {
      thread.pending.set(n, { resolve, reject });
      thread.worker.ref(); // a call in flight keeps the process alive; an idle pool does not
      thread.worker.postMessage({ seq: n, texts } satisfies WorkerRequest);
    });
  };
  return {
    id,
    dimension,
    maxTokens,
    countTokens,
    readyThreads: () => pool.length,
    async embed(texts) {
      if (closed) throw new Error("the embedder is closed");
      if (texts.length === 0) return [];
      if (texts.length >= 2 * MIN_TEXTS_PER_THREAD) grow();
      const parts = Math.min(pool.length, Math.ceil(texts.length / MIN_TEXTS_PER_THREAD));
      const size = Math.ceil(texts.length / parts);
      const slices = Array.from({ length: parts }, (_, p) => texts.slice(p * size, (p + 1) * size));
      return (await Promise.all(slices.map((slice) => track(dispatch(slice))))).flat();
    },
    async close() {
      closed = true;
      while (busy.size > 0) await Promise.all(busy);
      await Promise.all([...pool, ...spares].map((t) => t.worker.terminate()));
    },
  };
}

/** A thread at once (it takes calls only once `ready`, when its model has loaded). */
function startThread(spec: EmbedderSpec): { thread: Thread; ready: Promise<Extract<WorkerReply, { type: "ready" }>> } {
  const worker = new Worker(WORKER_PATH, { workerData: spec });
  const thread: Thread = { worker, pending: new Map() };
  const ready = new Promise<Extract<WorkerReply, { type: "ready" }>>((resolve, reject) => {
    worker.on("message", (reply: WorkerReply) => {
      if (reply.type === "ready") {
        worker.unref(); // referenced while it loads (startup awaits it), then only while calls are in flight
        return resolve(reply);
      }
      if (reply.type === "failed") return reject(new Error(`the embedding worker could not load its model: ${reply.message}`));
      const call = thread.pending.get(reply.seq);
      thread.pending.delete(reply.seq);
      if (thread.pending.size === 0) worker.unref();
      if (reply.type === "done") call?.resolve(reply.vectors);
      else call?.reject(new Error(reply.message));
    });
    const fail = (err: Error) => {
      reject(err);
      for (const call of thread.pending.values()) call.reject(err);
      thread.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the embedding worker exited (code ${code})`)));
  });
  ready.catch(() => {}); // a failure is the caller's to see through `ready`; not an unhandled rejection meanwhile
  return { thread, ready };
}

/** The spec's tokenizer on this thread, for `countTokens`. */
async function tokenCounter(spec: EmbedderSpec): Promise<(text: string) => number> {
  if (spec.kind === "onnx") {
    const tokenizer = await loadTokenizer(spec.dir);
    return (text) => tokenizer.encode(text).length;
  }
  const dir = spec.options.modelDir ?? useLiteModelDir();
  const tokenizer = new UnigramTokenizer(JSON.parse(readFileSync(`${dir}/vocab.json`, "utf8")) as UnigramVocab);
  return (text) => tokenizer.encode(text).length;
}
