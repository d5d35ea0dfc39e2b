import { Hono, type Context } from "hono";
import { accountingFor, type Accounting } from "../chat/accounting.ts";
import { collect, finalTimings, generate, type CompletionResult } from "../chat/completion.ts";
import type { ChatDeps } from "../chat/deps.ts";
import { extensionJson, unixSeconds, usageJson } from "../chat/openai-format.ts";
import { streamEvents } from "../chat/sse.ts";
import { planRequest } from "../chat/strategy.ts";
import { joinLogprobs, legacyLogprobs, textCompletionId, textCompletionJson, type TextChoice } from "../completions/format.ts";
import { mergeStreams } from "../completions/merge.ts";
import { prepareTextCompletion, type PreparedTextCompletion } from "../completions/prompt.ts";
import { CompletionRequest, promptList, type CompletionBody } from "../completions/schema.ts";
import type { AppEnv } from "../env.ts";
import { describe, jsonBody } from "../middleware/body.ts";

interface Meta {
  id: string;
  created: number;
  model: string;
  startedAt: number;
  accounting: Accounting;
}

/** OpenAI's legacy text completions (a plain continuation of the prompt, no chat template), mounted at /v1/completions. */
export function completionRoutes(deps: ChatDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post(
    "/",
    describe({ summary: "Create a completion of a prompt (OpenAI's legacy completions, as vLLM serves them), with a strategy: prompt, rag, adapter or rag+adapter.", tags: ["chat"] }),
    jsonBody(CompletionRequest),
    async (c) => {
      const body = c.req.valid("json");
      const tenant = c.get("tenant");
      const plan = await planRequest(deps.resolveModel, tenant, body.model, body.strategy);
      const prepared = await Promise.all(promptList(body.prompt).map((prompt) => prepareTextCompletion(deps, tenant, body, plan, prompt)));
      await deps.tokenBudget.check(tenant, sum(prepared.map((p) => p.promptTokens.length)));
      const meta: Meta = {
        id: textCompletionId(),
        created: unixSeconds(),
        model: body.model ?? plan.base,
        startedAt: c.get("startedAt"),
        accounting: accountingFor(deps, tenant.id, plan),
      };
      if (body.stream) return streamCompletions(c, deps, body, prepared, meta);

      const results = await collectAll(deps, prepared, c.req.raw.signal, meta.startedAt);
      const [promptTokens, completionTokens] = [sum(results.map((r) => r.promptTokens)), sum(results.map((r) => r.completionTokens))];
      await meta.accounting.record(promptTokens, completionTokens);
      const choices = results.map((r, index) => wholeChoice(deps, body, prepared[index], r, index));
      const extension = extensionJson(prepared[0], meta.accounting.adapterName, results[0].timings);
      return c.json(textCompletionJson(meta, choices, { usage: usageJson(promptTokens, completionTokens), switchyard: extension }));
    },
  );

  return app;
}

/** Runs every prompt together; one failing cancels the others. */
async function collectAll(deps: ChatDeps, prepared: PreparedTextCompletion[], signal: AbortSignal, startedAt: number): Promise<CompletionResult[]> {
  const cancel = new AbortController();
  const both = AbortSignal.any([signal, cancel.signal]);
  try {
    return await Promise.all(prepared.map((p) => collect(generate(deps, p, both), p, startedAt)));
  } catch (err) {
    cancel.abort();
    throw err;
  }
}

function wholeChoice(deps: ChatDeps, body: CompletionBody, prepared: PreparedTextCompletion, result: CompletionResult, index: number): TextChoice {
  const echo = body.echo ? prepared.echo : "";
  let logprobs = null;
  if (body.logprobs !== undefined && body.logprobs !== null) {
    const completion = legacyLogprobs(result.logprobs, echo.length);
    logprobs = body.echo ? joinLogprobs([legacyLogprobs(result.promptLogprobs ?? [], prepared.echoOffsets), completion]) : completion;
  }
  return { index, text: echo + result.text, logprobs, finish_reason: result.finishReason };
}

/** Chunks of `text_completion` over server-sent events (edge/chat/sse.ts), every prompt's interleaved, tagged by `index`. */
function streamCompletions(c: Context<AppEnv>, deps: ChatDeps, body: CompletionBody, prepared: PreparedTextCompletion[], meta: Meta) {
  const wantLogprobs = body.logprobs !== undefined && body.logprobs !== null;
  const offsets = prepared.map(() => 0);
  const totals = { prompt: 0, completion: 0, done: 0 };
  const chunk = (choice: TextChoice, extra?: Record<string, unknown>) => textCompletionJson(meta, [choice], extra);
  const echoChunk = (index: number) => {
    offsets[index] = prepared[index].echo.length;
    return chunk({ index, text: prepared[index].echo, logprobs: null, finish_reason: null });
  };
  return streamEvents(c, (signal) => mergeStreams(prepared.map((p) => generate(deps, p, signal))), {
    async open(send) {
      // Echo with logprobs waits for the prompt's scores (the engine's first event); without, it goes first.
      if (body.echo && !wantLogprobs) for (let i = 0; i < prepared.length; i++) await send(echoChunk(i));
    },
    async event({ index, event }, send) {
      if (event.type === "prompt") {
        if (!body.echo) return;
        offsets[index] = prepared[index].echo.length;
        const logprobs = legacyLogprobs(event.logprobs, prepared[index].echoOffsets);
        return send(chunk({ index, text: prepared[index].echo, logprobs, finish_reason: null }));
      }
      if (event.type === "text") {
        const logprobs = wantLogprobs && event.logprob ? legacyLogprobs([event.logprob], offsets[index]) : null;
        offsets[index] += event.text.length;
        return send(chunk({ index, text: event.text, logprobs, finish_reason: null }));
      }
      const extension = extensionJson(prepared[index], meta.accounting.adapterName, finalTimings(prepared[index], event, meta.startedAt));
      await send(chunk({ index, text: "", logprobs: null, finish_reason: event.finishReason }, { switchyard: extension }));
      totals.prompt += event.promptTokens;
      totals.completion += event.completionTokens;
      if (++totals.done < prepared.length) return;
      if (body.stream_options?.include_usage) await send(textCompletionJson(meta, [], { usage: usageJson(totals.prompt, totals.completion) }));
      await meta.accounting.record(totals.prompt, totals.completion);
    },
  }, deps.streamStallTimeoutMs ?? 0);
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
