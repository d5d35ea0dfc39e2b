import { Hono, type Context } from "hono";
import { accountingFor, type Accounting } from "../chat/accounting.ts";
import { collect, finalTimings, generate, prepareCompletion, type PreparedCompletion } from "../chat/completion.ts";
import type { ChatDeps } from "../chat/deps.ts";
import { chunkJson, completionId, completionJson, extensionJson, logprobsJson, unixSeconds, usageJson } from "../chat/openai-format.ts";
import { ChatCompletionRequest, type ChatCompletionBody } from "../chat/schema.ts";
import { sseResponse } from "../chat/sse.ts";
import { planRequest } from "../chat/strategy.ts";
import type { AppEnv } from "../env.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { toApiError } from "../middleware/errors.ts";

/** OpenAI-compatible chat completions, mounted at /v1/chat. */
export function chatRoutes(deps: ChatDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post(
    "/completions",
    describe({ summary: "Create a chat completion (OpenAI-compatible), answered with a strategy: prompt, rag, adapter or rag+adapter.", tags: ["chat"] }),
    jsonBody(ChatCompletionRequest),
    async (c) => {
      const startedAt = c.get("startedAt");
      const body = c.req.valid("json");
      const tenant = c.get("tenant");
      const plan = planRequest(deps.resolveModel, tenant, body.model, body.strategy);
      const prepared = await prepareCompletion(deps, tenant, body, plan);
      deps.tokenBudget.check(tenant, prepared.promptTokens.length);
      const accounting = accountingFor(deps, tenant.id, plan);
      const meta = { id: completionId(), created: unixSeconds(), model: body.model ?? plan.base };
      if (body.stream) return streamCompletion(c, deps, body, prepared, { ...meta, startedAt, accounting });

      const result = await collect(generate(deps, prepared, c.req.raw.signal), prepared, startedAt);
      await accounting.record(result.promptTokens, result.completionTokens);
      return c.json(completionJson({ ...meta, wantLogprobs: !!body.logprobs }, result, extensionJson(prepared, accounting.adapterName, result.timings)));
    },
  );

  return app;
}

interface StreamMeta {
  id: string;
  created: number;
  model: string;
  startedAt: number;
  accounting: Accounting;
}

/**
 * Server-sent events in OpenAI's chunk shape; a client that goes away, or stops reading for longer than
 * the stall timeout, cancels the generation, and one that reads slowly slows it (see ../chat/sse.ts).
 * The first event is awaited before the stream opens, so errors raised before any token (a full queue,
 * an adapter that fails to load) still reach the client as a JSON error with its status.
 */
async function streamCompletion(c: Context<AppEnv>, deps: ChatDeps, body: ChatCompletionBody, prepared: PreparedCompletion, meta: StreamMeta) {
  const includeUsage = !!body.stream_options?.include_usage;
  const chunkMeta = { ...meta, includeUsage };
  const cancel = new AbortController();
  const events = generate(deps, prepared, AbortSignal.any([c.req.raw.signal, cancel.signal]))[Symbol.asyncIterator]();
  let next = await events.next();
  async function* chunks(): AsyncGenerator<string> {
    yield JSON.stringify(chunkJson(chunkMeta, { delta: { role: "assistant", content: "" }, finish_reason: null }));
    for (; !next.done; next = await events.next()) {
      const event = next.value;
      if (event.type === "text") {
        const logprobs = event.logprob && body.logprobs ? logprobsJson([event.logprob]) : null;
        yield JSON.stringify(chunkJson(chunkMeta, { delta: { content: event.text }, logprobs, finish_reason: null }));
        continue;
      }
      const extension = extensionJson(prepared, meta.accounting.adapterName, finalTimings(prepared, event, meta.startedAt));
      yield JSON.stringify(chunkJson(chunkMeta, { delta: {}, finish_reason: event.finishReason }, { switchyard: extension }));
      if (includeUsage) yield JSON.stringify({ ...chunkJson(chunkMeta, null), usage: usageJson(event.promptTokens, event.completionTokens) });
      await meta.accounting.record(event.promptTokens, event.completionTokens);
    }
    yield "[DONE]";
  }
  return sseResponse(c, chunks(), {
    stallTimeoutMs: deps.streamStallTimeoutMs ?? 0,
    onCancel: () => cancel.abort(),
    onStall: () => c.get("logger").warn({ stallTimeoutMs: deps.streamStallTimeoutMs }, "stream client stalled: generation cancelled"),
    onError: (err) => {
      c.get("logger").error({ err }, "stream failed");
      return JSON.stringify(toApiError(err).toBody());
    },
  });
}
