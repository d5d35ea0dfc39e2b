import type { GenerateEvent, GenerateRequest, Inference } from "../../ports/index.ts";
import type { AdapterService } from "./index.ts";

/**
 * Wraps an Inference so that every request with an adapter holds it for its whole life: the
 * adapter's files survive a delete and its weights stay pinned in the cache until the last event,
 * and the completion's tokens are counted in the adapter's metrics. An unknown or deleted adapter
 * fails the request before the engine sees it.
 */
export function withAdapterLeases(inference: Inference, adapters: Pick<AdapterService, "acquire" | "cache">): Inference {
  return {
    model: () => inference.model(),
    encode: (request) => inference.encode(request),
    close: () => inference.close(),
    generate: (request) => (request.adapter === undefined ? inference.generate(request) : leased(inference, adapters, request, request.adapter)),
  };
}

async function* leased(
  inference: Inference,
  adapters: Pick<AdapterService, "acquire" | "cache">,
  request: GenerateRequest,
  adapterId: string,
): AsyncIterable<GenerateEvent> {
  const inUse = await adapters.acquire(adapterId);
  try {
    for await (const event of inference.generate(request)) {
      if (event.type === "done") adapters.cache.recordTokens(adapterId, event.completionTokens);
      yield event;
    }
  } finally {
    inUse.release();
  }
}
