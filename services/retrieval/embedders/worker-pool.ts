import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { loadTokenizer } from "../../model/tokenizer.ts";
import type { Embedder } from "../types.ts";
import type { OnnxEncoderOptions } from "./onnx-encoder.ts";
import { UnigramTokenizer, type UnigramVocab } from "./sentencepiece.ts";
import { useLiteModelDir, type UseLiteOptions } from "./use-lite.ts";

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

/**
 * An embedder whose model runs on worker threads, so that embedding (tokenising, the ONNX run,
 * pooling) never holds the HTTP event loop: ingestion and query embedding alike. Each call goes to
 * the thread with the fewest calls in flight; each thread runs its calls one after another.
 * Token counting (chunk sizing, synchronous) stays here with a copy of the tokenizer only.
 * A thread that dies fails its calls in flight and is replaced at the next call.
 */
export async function createWorkerEmbedder(spec: EmbedderSpec, threads = 1): Promise<Embedder> {
  const countTokens = await tokenCounter(spec);
  const started = await Promise.all(Array.from({ length: Math.max(1, threads) }, () => startThread(spec)));
  const pool = started.map((s) => s.thread);
  const { id, dimension, maxTokens } = started[0].info;
  let seq = 0;
  let closed = false;
  return {
    id,
    dimension,
    maxTokens,
    countTokens,
    async embed(texts) {
      if (closed) throw new Error("the embedder is closed");
      if (texts.length === 0) return [];
      let i = pool.reduce((best, t, j) => (t.pending.size < pool[best].pending.size ? j : best), 0);
      if (pool[i].worker.threadId === -1) pool[i] = (await startThread(spec)).thread;
      const thread = pool[i];
      const n = ++seq;
      return new Promise<Float32Array[]>((resolve, reject) => {
        thread.pending.set(n, { resolve, reject });
        thread.worker.ref(); // a call in flight keeps the process alive; an idle pool does not
        thread.worker.postMessage({ seq: n, texts } satisfies WorkerRequest);
      });
    },
    async close() {
      closed = true;
      await Promise.all(pool.map((t) => t.worker.terminate()));
    },
  };
}

function startThread(spec: EmbedderSpec): Promise<{ thread: Thread; info: Extract<WorkerReply, { type: "ready" }> }> {
  const worker = new Worker(WORKER_PATH, { workerData: spec });
  const thread: Thread = { worker, pending: new Map() };
  return new Promise((resolve, reject) => {
    worker.on("message", (reply: WorkerReply) => {
      if (reply.type === "ready") {
        worker.unref(); // referenced while it loads (startup awaits it), then only while calls are in flight
        return resolve({ thread, info: reply });
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
