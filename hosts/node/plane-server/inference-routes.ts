/**
 * The Inference port served over HTTP (the other side of clients/inference.ts). `generate` reads the
 * first event before it answers, so a refusal is a plain JSON error with its status; then it streams
 * NDJSON. The engine's signal aborts when the caller goes away (the connection closes or the stream
 * is cancelled), which ends the sequence and frees its batch slot. `/v1/node/load` answers the node's
 * queue depth and adapters (clients/wire/load.ts) for a fleet router.
 */
import type { Hono } from "hono";
import { z } from "zod";
import { PlaneError } from "../../../ports/errors.ts";
import type { GenerateEvent, GenerateRequest, Inference } from "../../../ports/inference.ts";
import { ndjsonLine } from "../../../clients/wire/ndjson.ts";
import { toWireError } from "../../../clients/wire/errors.ts";
import { INFERENCE_ROUTES } from "../../../clients/wire/routes.ts";
import type { NodeLoad } from "../../../clients/wire/load.ts";
import { jsonBody, parseWire } from "./node-app.ts";

const Message = z.object({ role: z.enum(["system", "user", "assistant"]), content: z.string() });
const Source = z.union([z.object({ messages: z.array(Message) }), z.object({ text: z.string() }), z.object({ tokens: z.array(z.number().int()) })]);
const EncodeBody = z.object({ candidates: z.array(Source).min(1), reserve: z.number().int().min(0).optional(), offsets: z.boolean().optional() });
const Params = z.object({
  maxTokens: z.number().int(), temperature: z.number(), topP: z.number(), topK: z.number().int(), minP: z.number(),
  repetitionPenalty: z.number(), frequencyPenalty: z.number(), presencePenalty: z.number(),
  seed: z.number().int().optional(), stop: z.array(z.string()), logprobs: z.number().int().optional(),
});
const GenerateBody = z.object({ promptTokens: z.array(z.number().int()), params: Params, adapter: z.string().optional(), promptLogprobs: z.number().int().optional() });

export function mountInference(app: Hono, inference: () => Inference, load: () => NodeLoad): void {
  app.get(INFERENCE_ROUTES.model, async (c) => c.json(await inference().model()));
  app.get(INFERENCE_ROUTES.load, (c) => c.json(load()));
  app.post(INFERENCE_ROUTES.encode, async (c) => c.json(await inference().encode(parseWire(EncodeBody, await jsonBody(c)))));
  app.post(INFERENCE_ROUTES.generate, async (c) => {
    const body = parseWire(GenerateBody, await jsonBody(c));
    const controller = new AbortController();
    const callerGone = () => controller.abort(new Error("the edge closed the generation"));
    c.req.raw.signal.addEventListener("abort", callerGone, { once: true });
    const request: GenerateRequest = { ...body, signal: controller.signal };
    const events = inference().generate(request)[Symbol.asyncIterator]();
    let first: IteratorResult<GenerateEvent>;
    try {
      first = await events.next();
    } catch (err) {
      c.req.raw.signal.removeEventListener("abort", callerGone);
      throw err;
    }
    return new Response(eventStream(first, events, controller, () => c.req.raw.signal.removeEventListener("abort", callerGone)), {
      headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" },
    });
  });
}

function eventStream(first: IteratorResult<GenerateEvent>, events: AsyncIterator<GenerateEvent>, controller: AbortController, cleanup: () => void): ReadableStream<Uint8Array> {
  let pending: IteratorResult<GenerateEvent> | undefined = first;
  return new ReadableStream<Uint8Array>({
    async pull(stream) {
      try {
        const next = pending ?? (await events.next());
        pending = undefined;
        if (next.done) {
          cleanup();
          stream.close();
        } else stream.enqueue(ndjsonLine({ event: next.value }));
      } catch (err) {
        cleanup();
        if (controller.signal.aborted) return stream.close();
        const error = err instanceof PlaneError ? err : new PlaneError("unavailable", "The generation failed on the node.", { code: "internal_error" });
        stream.enqueue(ndjsonLine({ error: toWireError(error) }));
        stream.close();
      }
    },
    async cancel() {
      controller.abort(new Error("the edge closed the generation"));
      cleanup();
      await events.return?.();
    },
  });
}
