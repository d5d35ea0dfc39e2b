/**
 * The Inference port over HTTP: a plane node started by `switchyard serve inference`. `generate`
 * streams NDJSON; aborting the request's signal closes the connection, and the node cancels the
 * engine's sequence. A generate is sent once: never retried, since a retry after tokens would
 * repeat them (only model and encode are retried).
 */
import { PlaneError } from "../ports/errors.ts";
import type { EncodedPrompt, EncodeRequest, GenerateEvent, GenerateRequest, Inference, ModelInfo } from "../ports/inference.ts";
import { NodeClient, type NodeClientOptions } from "./node-call.ts";
import { parseNodeLoad, type NodeLoad } from "./wire/load.ts";
import { readNdjson } from "./wire/ndjson.ts";
import { fromWireError } from "./wire/errors.ts";
import { INFERENCE_ROUTES } from "./wire/routes.ts";

const JSON_HEADERS = { "content-type": "application/json" };

export class HttpInference implements Inference {
  private readonly node: NodeClient;
  private info?: Promise<ModelInfo>;

  constructor(options: NodeClientOptions) {
    this.node = new NodeClient(options);
  }

  model(): Promise<ModelInfo> {
    this.info ??= this.node.json<ModelInfo>({ method: "GET", path: INFERENCE_ROUTES.model, idempotent: true }).catch((err: unknown) => {
      this.info = undefined;
      throw err;
    });
    return this.info;
  }

  encode(request: EncodeRequest): Promise<EncodedPrompt> {
    return this.node.json<EncodedPrompt>({ method: "POST", path: INFERENCE_ROUTES.encode, body: JSON.stringify(request), headers: JSON_HEADERS, idempotent: true });
  }

  async *generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const { signal, ...body } = request;
    // Our own controller, so a consumer that stops iterating also closes the connection.
    const controller = new AbortController();
    const abort = () => controller.abort(signal!.reason);
    if (signal?.aborted) throw signal.reason;
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const response = await this.node.call({
        method: "POST", path: INFERENCE_ROUTES.generate, body: JSON.stringify(body), headers: JSON_HEADERS, idempotent: false, signal: controller.signal,
      });
      let finished = false;
      try {
        for await (const line of readNdjson(response.body!)) {
          const { event, error } = line as { event?: GenerateEvent; error?: unknown };
          if (error !== undefined) throw fromWireError({ error }, 500);
          if (event === undefined) continue;
          yield event;
          if (event.type === "done") finished = true;
        }
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw err instanceof PlaneError ? err : brokenStream();
      }
      if (signal?.aborted) throw signal.reason;
      if (!finished) throw brokenStream();
    } finally {
      signal?.removeEventListener("abort", abort);
      controller.abort(new Error("generation stream closed"));
    }
  }

  /** The node's queue depth and adapters (not part of the port: what a fleet router reads); `unavailable` while it loads. */
  async load(timeoutMs?: number): Promise<NodeLoad> {
    const value = await this.node.json<unknown>({ method: "GET", path: INFERENCE_ROUTES.load, idempotent: false, timeoutMs });
    const load = parseNodeLoad(value);
    if (!load) throw new PlaneError("unavailable", "The inference node's load report has an unexpected shape.", { code: "node_error" });
    return load;
  }

  async close(): Promise<void> {}
}

function brokenStream(): PlaneError {
  return new PlaneError("unavailable", "The inference node's stream ended before the generation finished.", { code: "stream_broken" });
}
