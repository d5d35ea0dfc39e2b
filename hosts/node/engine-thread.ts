/**
 * The engine in a worker thread, behind the Inference port (SWITCHYARD_ENGINE_THREAD=worker, the
 * default): this proxy runs on the edge's thread and only posts messages, so HTTP handling never waits
 * on a decode step (hosts/node/engine-worker.ts runs the engine and its adapter leases).
 *
 * Invariants: refusals come as the stream's first `next()` error, rebuilt as the same PlaneError
 * (engine-wire.ts); aborting the signal (or leaving the loop early) sends `cancel`, which frees the
 * sequence in the engine, and the stream throws the abort reason as in process; a reader that stops
 * taking events stops granting credit, so the worker stops pulling and the engine pauses the sequence.
 * If the worker dies, every call and stream fails with `unavailable`.
 *
 * Prompts are encoded here, with the model's own tokenizer and chat template (the engine's encoder,
 * services/inference/prompt-encoder.ts): a round trip would wait for a turn of the worker's loop, that is up to
 * a whole decode step, where encoding a chat prompt takes a fraction of a millisecond.
 */
import { Worker } from "node:worker_threads";
import { PlaneError } from "../../ports/errors.ts";
import type { EncodedPrompt, EncodeRequest, GenerateEvent, GenerateRequest, Inference, ModelInfo } from "../../ports/inference.ts";
import type { EngineStats } from "../../services/inference/engine.ts";
import { promptEncoder } from "../../services/inference/prompt-encoder.ts";
import { loadChatTemplate } from "../../services/model/chat-template.ts";
import { loadTokenizer } from "../../services/model/tokenizer.ts";
import { errorFromWire, EVENT_CREDIT, type EngineWorkerOptions, type FromWorker, type ToWorker, type WireError } from "./engine-wire.ts";

const ENTRY = new URL("./engine-worker.mjs", import.meta.url);

export interface EngineThread extends Inference {
  readonly info: ModelInfo;
  /** The adapter was deleted: the worker's leases stop new holders and remove its files after the last. */
  retire(adapter: string): Promise<void>;
  /** The worker's Prometheus text: the engine's gauges and the adapter cache's metrics. */
  metricsText(): Promise<string>;
  stats(): Promise<EngineStats>;
}

interface Stream {
  push(event: GenerateEvent): void;
  end(error?: Error): void;
}

type Request = Exclude<ToWorker, { type: "generate" | "credits" | "cancel" }>;
type Call = { [K in Request["type"]]: Omit<Extract<Request, { type: K }>, "id"> }[Request["type"]];

/** Starts the worker and resolves once its engine is loaded (rejects with the load's error). */
export async function startEngineThread(options: EngineWorkerOptions): Promise<EngineThread> {
  const worker = new Worker(ENTRY, { workerData: options });
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const streams = new Map<number, Stream>();
  let nextId = 1;
  let dead: Error | undefined;
  const post = (message: ToWorker) => {
    if (!dead) worker.postMessage(message);
  };
  /** Credit of every stream, gathered over one turn of this loop and posted once at its end. */
  let grants = new Map<number, number>();
  const grant = (id: number, n: number) => {
    if (grants.size === 0) {
      process.nextTick(() => {
        const all = [...grants];
        grants = new Map();
        post({ type: "credits", grants: all });
      });
    }
    grants.set(id, (grants.get(id) ?? 0) + n);
  };

  const tokenizer = Promise.all([loadTokenizer(options.modelDir), loadChatTemplate(options.modelDir)]);
  tokenizer.catch(() => undefined); // awaited below, once the worker is ready
  const info = await new Promise<ModelInfo>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the engine worker exited (code ${code}) before its model loaded`));
    worker.once("error", reject);
    worker.once("exit", onExit);
    worker.once("message", (message: FromWorker) => {
      worker.off("error", reject);
      worker.off("exit", onExit);
      if (message.type === "ready") resolve(message.info);
      else reject(message.type === "failed" ? errorFromWire(message.error) : new Error(`unexpected first message ${message.type}`));
    });
  });

  const encoder = promptEncoder(...(await tokenizer), info);

  const fail = (error: Error) => {
    dead ??= new PlaneError("unavailable", `inference engine worker stopped: ${error.message}`, { code: "inference_unavailable" });
    for (const call of pending.values()) call.reject(dead);
    for (const stream of streams.values()) stream.end(dead);
    pending.clear();
    streams.clear();
  };
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`exit code ${code}`)));
  const receive = (message: FromWorker): void => {
    if (message.type === "batch") {
      message.messages.forEach(receive);
    } else if (message.type === "reply") {
      const call = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) call?.reject(errorFromWire(message.error));
      else call?.resolve(message.value);
    } else if (message.type === "event") {
      streams.get(message.id)?.push(message.event);
    } else if (message.type === "end") {
      streams.get(message.id)?.end(message.error && errorFromWire(message.error));
      streams.delete(message.id);
    }
  };
  worker.on("message", receive);

  const call = <T>(message: Call): Promise<T> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      post({ ...message, id } as ToWorker);
    });
  };

  const generate = (request: GenerateRequest): AsyncIterable<GenerateEvent> => {
    const { signal, ...plain } = request;
    const id = nextId++;
    const buffered: GenerateEvent[] = [];
    let ended = false;
    let error: Error | undefined;
    let wake: (() => void) | undefined;
    const stream: Stream = {
      push: (event) => void (buffered.push(event), wake?.()),
      end: (e) => void ((ended = true), (error = e), wake?.()),
    };
    const cancel = () => {
      if (!ended) post({ type: "cancel", id });
      ended = true;
      streams.delete(id);
      wake?.();
    };
    if (dead) stream.end(dead);
    else {
      streams.set(id, stream);
      post({ type: "generate", id, request: plain });
      signal?.addEventListener("abort", cancel, { once: true });
    }
    async function* events(): AsyncGenerator<GenerateEvent> {
      let taken = 0;
      try {
        for (;;) {
          while (buffered.length) {
            if (++taken >= EVENT_CREDIT / 2) {
              grant(id, taken);
              taken = 0;
            }
            yield buffered.shift()!;
          }
          if (signal?.aborted) throw signal.reason;
          if (ended) {
            if (error) throw error;
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        signal?.removeEventListener("abort", cancel);
        cancel(); // a no-op once the worker ended it
      }
    }
    return { [Symbol.asyncIterator]: events };
  };

  return {
    info,
    model: async () => info,
    encode: async (request: EncodeRequest): Promise<EncodedPrompt> => {
      if (dead) throw dead;
      return encoder.encode(request);
    },
    generate,
    retire: (adapter) => call<void>({ type: "retire", adapter }),
    metricsText: () => call<string>({ type: "metrics" }),
    stats: () => call<EngineStats>({ type: "stats" }),
    async close() {
      if (!dead) await call<void>({ type: "close" });
      fail(new Error("closed"));
      await worker.terminate();
    },
  };
}
