/**
 * The engine's worker thread (started by hosts/node/engine-thread.ts through engine-worker.mjs): the
 * engine, and the adapter cache and leases it acquires from, so no decode step runs on the edge's
 * event loop. Adapter weights are loaded here by id from the adapter plane's blob folder (read only:
 * the edge's catalog owns writes and the crash sweep); a deletion reaches the leases as `retire`.
 *
 * A generation's events are sent only as far as the reader's credit (EVENT_CREDIT ahead): beyond it
 * this side stops pulling from the engine's stream, which pauses the sequence as in process.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Registry } from "prom-client";
import { AdapterCache } from "../../services/adapters/cache.ts";
import { LocalAdapterBlobs } from "../../services/adapters/blob-store.ts";
import { AdapterLeases } from "../../services/adapters/leases.ts";
import { loadAdapter } from "../../services/adapters/validate.ts";
import { createEngine } from "../../services/inference/engine.ts";
import type { GenerateEvent } from "../../ports/inference.ts";
import { errorToWire, EVENT_CREDIT, type EngineWorkerOptions, type FromWorker, type ToWorker } from "./engine-wire.ts";
import { registerEngineGauges } from "./prometheus.ts";

interface Running {
  iterator: AsyncIterator<GenerateEvent>;
  credit: number;
  /** Wakes the pump when credit arrives or the generation is cancelled. */
  wake?: () => void;
  /** Cancels the engine's sequence (its slot is freed at once, even while the pump awaits an event). */
  abort: AbortController;
}

const port = parentPort!;
/**
 * Messages of one turn of this thread's loop (a decode step's events of every sequence) go as one post,
 * at the end of the turn: a tick runs once the turn's promise jobs are done, before the loop's next
 * callback, so the events never wait behind the next decode step (which an immediate would).
 */
let outbox: FromWorker[] = [];
const send = (message: FromWorker) => {
  if (outbox.push(message) > 1) return;
  process.nextTick(() => {
    const messages = outbox;
    outbox = [];
    port.postMessage(messages.length === 1 ? messages[0] : { type: "batch", messages });
  });
};

async function start(options: EngineWorkerOptions) {
  const metrics = new Registry();
  const adapters = options.adapters;
  let leases: AdapterLeases | undefined;
  if (adapters) {
    const blobs = new LocalAdapterBlobs(adapters.dir);
    const cache = new AdapterCache({
      load: async (id) => loadAdapter(id, await blobs.read(id), adapters.base, adapters.limits),
      budgetBytes: adapters.cacheBudgetBytes,
      maxAdaptersPerBatch: adapters.maxAdaptersPerBatch,
      metrics,
    });
    leases = new AdapterLeases(cache, blobs);
  }
  const engine = await createEngine({
    modelDir: options.modelDir,
    modelId: options.modelId,
    cacheDir: options.cacheDir,
    maxQueue: options.maxQueue,
    adapters: leases,
    maxAdaptersPerBatch: adapters?.maxAdaptersPerBatch,
    maxLoraRank: options.maxLoraRank,
    executionProvider: options.executionProvider,
    weights: options.weights,
  });
  registerEngineGauges(metrics, () => engine.stats());
  return { engine, leases, metrics };
}

type Started = Awaited<ReturnType<typeof start>>;

const running = new Map<number, Running>();

/** Sends the generation's events while it has credit; the last message is its `end`. */
async function pump(id: number, generation: Running): Promise<void> {
  try {
    for (;;) {
      const cancelled = () => generation.abort.signal.aborted;
      while (generation.credit <= 0 && !cancelled()) await new Promise<void>((resolve) => (generation.wake = resolve));
      if (cancelled()) return send({ type: "end", id });
      const next = await generation.iterator.next();
      if (next.done) return send({ type: "end", id });
      generation.credit--;
      send({ type: "event", id, event: next.value });
    }
  } catch (error) {
    send({ type: "end", id, error: errorToWire(error) });
  } finally {
    running.delete(id);
  }
}

async function reply(id: number, work: () => Promise<unknown>): Promise<void> {
  try {
    send({ type: "reply", id, value: await work() });
  } catch (error) {
    send({ type: "reply", id, error: errorToWire(error) });
  }
}

function handle(started: Started, message: ToWorker): void {
  const { engine, leases, metrics } = started;
  switch (message.type) {
    case "generate": {
      const abort = new AbortController();
      let iterator: AsyncIterator<GenerateEvent>;
      try {
        iterator = engine.generate({ ...message.request, signal: abort.signal })[Symbol.asyncIterator]();
      } catch (error) {
        return send({ type: "end", id: message.id, error: errorToWire(error) });
      }
      const generation: Running = { iterator, credit: EVENT_CREDIT, abort };
      running.set(message.id, generation);
      return void pump(message.id, generation);
    }
    case "credits":
      for (const [id, n] of message.grants) {
        const generation = running.get(id);
        if (!generation) continue;
        generation.credit += n;
        generation.wake?.();
      }
      return;
    case "cancel": {
      const generation = running.get(message.id);
      if (!generation) return;
      generation.abort.abort(new Error("generation cancelled"));
      return generation.wake?.();
    }
    case "retire":
      return void reply(message.id, async () => leases?.retire(message.adapter));
    case "metrics":
      return void reply(message.id, () => metrics.metrics());
    case "stats":
      return void reply(message.id, async () => engine.stats());
    case "close":
      return void reply(message.id, async () => {
        await engine.close();
        await leases?.settled();
      }); // the proxy then terminates this thread
  }
}

try {
  const started = await start(workerData as EngineWorkerOptions);
  port.on("message", (message: ToWorker) => handle(started, message));
  port.postMessage({ type: "ready", info: started.engine.info } satisfies FromWorker);
} catch (error) {
  port.postMessage({ type: "failed", error: errorToWire(error) } satisfies FromWorker);
}
