import { Hono, type Context } from "hono";
import { accountingFor, type Accounting } from "../chat/accounting.ts";
import { collect, finalTimings, generate, prepareCompletion, type PreparedCompletion } from "../chat/completion.ts";
import type { ChatDeps } from "../chat/deps.ts";
import { chunkJson, completionId, completionJson, extensionJson, logprobsJson, unixSeconds, usageJson } from "../chat/openai-format.ts";
import { normalizeMessages, retrievalQuery } from "../chat/prompt.ts";
import { ChatCompletionRequest, type ChatCompletionBody } from "../chat/schema.ts";
import { streamEvents } from "../chat/sse.ts";
import { planRequest, type Plan } from "../chat/strategy.ts";
import type { AppEnv } from "../env.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { noMonitoringMetrics } from "../monitoring/metrics.ts";
import { rateRoute } from "./feedback.ts";
import { unavailableRoutes } from "./unavailable.ts";

/**
 * OpenAI-compatible chat completions, mounted at /v1/chat. A finished completion (streamed or not) is
 * kept for feedback and input drift when the host runs the feedback plane; it is rated at
 * /completions/:id/feedback (routes/feedback.ts).
 */
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
      const plan = await planRequest(deps.resolveModel, tenant, body.model, body.strategy);
      const prepared = await prepareCompletion(deps, tenant, body, plan);
      await deps.tokenBudget.check(tenant, prepared.promptTokens.length);
      const accounting = accountingFor(deps, tenant.id, plan);
      const meta = { id: completionId(), created: unixSeconds(), model: body.model ?? plan.base };
      const served = () => keepResponse(c, deps, meta.id, tenant.id, plan, body);
      if (body.stream) return streamCompletion(c, deps, body, prepared, { ...meta, startedAt, accounting, served });

      const result = await collect(generate(deps, prepared, c.req.raw.signal), prepared, startedAt);
      await accounting.record(result.promptTokens, result.completionTokens);
      await served();
      return c.json(completionJson({ ...meta, wantLogprobs: !!body.logprobs }, result, extensionJson(prepared, accounting.adapterName, result.timings)));
    },
  );

  if (deps.feedback) rateRoute(app, deps.feedback, deps.monitoringMetrics ?? noMonitoringMetrics);
  else app.route("/completions/:id/feedback", unavailableRoutes("feedback"));

  return app;
}

/** Keeps a finished completion for ratings and input drift; a failure is logged, the answer still goes out. */
async function keepResponse(c: Context<AppEnv>, deps: ChatDeps, id: string, tenantId: string, plan: Plan, body: ChatCompletionBody): Promise<void> {
  if (!deps.feedback) return;
  try {
    const prompt = retrievalQuery(normalizeMessages(body.messages));
    await deps.feedback.recordResponse({ id, tenantId, strategy: plan.strategy, adapter: plan.adapterName, prompt, createdAt: Date.now() });
  } catch (err) {
    c.get("logger").warn({ err, id }, "could not keep the response for feedback");
  }
}

interface StreamMeta {
  id: string;
  created: number;
  model: string;
  startedAt: number;
  accounting: Accounting;
  served: () => Promise<void>;
}

/** OpenAI's chat chunks over server-sent events (edge/chat/sse.ts). */
function streamCompletion(c: Context<AppEnv>, deps: ChatDeps, body: ChatCompletionBody, prepared: PreparedCompletion, meta: StreamMeta) {
  const includeUsage = !!body.stream_options?.include_usage;
  const chunkMeta = { ...meta, includeUsage };
  return streamEvents(c, (signal) => generate(deps, prepared, signal), {
    open: (send) => send(chunkJson(chunkMeta, { delta: { role: "assistant", content: "" }, finish_reason: null })),
    async event(event, send) {
      if (event.type === "prompt") return;
      if (event.type === "text") {
        const logprobs = event.logprob && body.logprobs ? logprobsJson([event.logprob]) : null;
        return send(chunkJson(chunkMeta, { delta: { content: event.text }, logprobs, finish_reason: null }));
      }
      const extension = extensionJson(prepared, meta.accounting.adapterName, finalTimings(prepared, event, meta.startedAt));
      await send(chunkJson(chunkMeta, { delta: {}, finish_reason: event.finishReason }, { switchyard: extension }));
      if (includeUsage) await send({ ...chunkJson(chunkMeta, null), usage: usageJson(event.promptTokens, event.completionTokens) });
      await meta.accounting.record(event.promptTokens, event.completionTokens);
      await meta.served();
    },
  }, deps.streamStallTimeoutMs ?? 0);
}
