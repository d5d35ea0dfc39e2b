import { Hono, type Context } from "hono";
import { runArm, type ArmContext, type ArmEvent, type ArmResult } from "../chat/compare-arm.ts";
import type { ChatDeps } from "../chat/deps.ts";
import { interleave } from "../chat/interleave.ts";
import { unixSeconds, usageJson } from "../chat/openai-format.ts";
import { CompareRequest } from "../chat/schema.ts";
import { streamEvents } from "../chat/sse.ts";
import { availableStrategies } from "../chat/strategy.ts";
import type { ApiError } from "../errors.ts";
import type { AppEnv } from "../env.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import type { Strategy } from "../tenant-settings.ts";

/** The stream's events, for the OpenAPI description and the README. */
const STREAM_DOCS = [
  "With `stream: true` the answer is server-sent events (`data: <json>`), every strategy running at once, their events interleaved:",
  '`{"object":"compare.start","created","model","strategies":[...]}` first;',
  '`{"object":"compare.chunk","index","strategy","delta":{"content"}}` per piece of text;',
  'per strategy, one `{"object":"compare.done","index","strategy","finish_reason","usage","switchyard":{strategy,adapter,sources,sources_dropped,timings},"scores"}`',
  'or one `{"object":"compare.error","index","strategy","error":{message,type,param,code,status}}`;',
  "then `data: [DONE]`. `index` is the strategy's place in `strategies`. A client that disconnects cancels every strategy's generation.",
].join(" ");

/** Side-by-side answers of several strategies for the same messages, mounted at /v1/compare. */
export function compareRoutes(deps: ChatDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post(
    "/",
    describe({
      summary: "Run the same messages through several strategies at once; with a reference answer, score each.",
      description: STREAM_DOCS,
      tags: ["chat"],
      streams: true,
    }),
    jsonBody(CompareRequest),
    async (c) => {
      const body = c.req.valid("json");
      const tenant = c.get("tenant");
      const strategies = body.strategies ?? await availableStrategies(deps.resolveModel, tenant, body.model);
      const arm = (signal: AbortSignal): ArmContext => ({ deps, tenant, body, signal, logger: c.get("logger"), startedAt: c.get("startedAt") });
      if (body.stream) return streamCompare(c, deps, body.model ?? null, strategies, arm);
      const ctx = arm(c.req.raw.signal);
      const results = await Promise.all(strategies.map(async (s) => resultJson(s, await settle(runArm(ctx, s)))));
      return c.json({ object: "compare", created: unixSeconds(), model: body.model ?? null, results });
    },
  );

  return app;
}

/** Every strategy's events, interleaved and tagged with the strategy and its index (STREAM_DOCS). */
function streamCompare(c: Context<AppEnv>, deps: ChatDeps, model: string | null, strategies: Strategy[], arm: (signal: AbortSignal) => ArmContext) {
  return streamEvents(c, (signal) => interleave(strategies.map((s) => runArm(arm(signal), s))), {
    open: (send) => send({ object: "compare.start", created: unixSeconds(), model, strategies }),
    event([index, event], send) {
      const strategy = strategies[index]!;
      if (event.type === "text") return send({ object: "compare.chunk", index, strategy, delta: { content: event.text } });
      if (event.type === "error") return send({ object: "compare.error", index, strategy, error: errorJson(event.error) });
      const { finishReason, promptTokens, completionTokens, extension, scores } = event.result;
      return send({ object: "compare.done", index, strategy, finish_reason: finishReason, usage: usageJson(promptTokens, completionTokens), switchyard: extension, scores });
    },
  }, deps.streamStallTimeoutMs ?? 0);
}

type Settled = { text: string; result: ArmResult } | { error: ApiError };

/** Runs one strategy's events to their end: its whole text and result, or its error. */
async function settle(events: AsyncIterable<ArmEvent>): Promise<Settled> {
  let text = "";
  for await (const event of events) {
    if (event.type === "text") text += event.text;
    else if (event.type === "done") return { text, result: event.result };
    else return { error: event.error };
  }
  throw new Error("a compare strategy ended without a result");
}

/** One strategy's entry in the non-streaming answer. */
function resultJson(strategy: Strategy, settled: Settled) {
  if ("error" in settled) return { strategy, content: null, error: errorJson(settled.error) };
  const { finishReason, promptTokens, completionTokens, extension, scores } = settled.result;
  return { content: settled.text, finish_reason: finishReason, usage: usageJson(promptTokens, completionTokens), ...extension, scores, error: null };
}

const errorJson = (error: ApiError) => ({ ...error.toBody().error, status: error.status });
