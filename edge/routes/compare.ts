import { Hono } from "hono";
import { accountingFor } from "../chat/accounting.ts";
import { collect, generate, prepareCompletion } from "../chat/completion.ts";
import type { ChatDeps } from "../chat/deps.ts";
import { extensionJson, unixSeconds, usageJson } from "../chat/openai-format.ts";
import { CompareRequest, type CompareBody } from "../chat/schema.ts";
import { availableStrategies, planRequest, usesRetrieval } from "../chat/strategy.ts";
import { planeUnavailable, type Tenant } from "../../ports/index.ts";
import type { AppEnv, Log } from "../env.ts";
import { describe, jsonBody } from "../middleware/body.ts";
import { toApiError } from "../middleware/errors.ts";
import type { Strategy } from "../tenant-settings.ts";

/** Side-by-side answers of several strategies for the same messages, mounted at /v1/compare. */
export function compareRoutes(deps: ChatDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post(
    "/",
    describe({ summary: "Run the same messages through several strategies at once; with a reference answer, score each.", tags: ["chat"] }),
    jsonBody(CompareRequest),
    async (c) => {
      const body = c.req.valid("json");
      const tenant = c.get("tenant");
      const strategies = body.strategies ?? await availableStrategies(deps.resolveModel, tenant, body.model);
      const results = await Promise.all(strategies.map((s) => runStrategy(deps, tenant, body, s, c.req.raw.signal, c.get("logger"), c.get("startedAt"))));
      return c.json({ object: "compare", created: unixSeconds(), model: body.model ?? null, results });
    },
  );

  return app;
}

/** One strategy's entry: its answer, or its error; a failing strategy never sinks the others. */
async function runStrategy(deps: ChatDeps, tenant: Tenant, body: CompareBody, strategy: Strategy, signal: AbortSignal, logger: Log, startedAt: number) {
  try {
    const plan = await planRequest(deps.resolveModel, tenant, body.model, strategy);
    const prepared = await prepareCompletion(deps, tenant, body, plan);
    deps.tokenBudget.check(tenant, prepared.promptTokens.length);
    const result = await collect(generate(deps, prepared, signal), prepared, startedAt);
    const accounting = accountingFor(deps, tenant.id, plan);
    await accounting.record(result.promptTokens, result.completionTokens);
    const context = usesRetrieval(strategy) ? prepared.sources.map((s) => s.text).join("\n") : undefined;
    return {
      content: result.text,
      finish_reason: result.finishReason,
      usage: usageJson(result.promptTokens, result.completionTokens),
      ...extensionJson(prepared, accounting.adapterName, result.timings),
      scores: body.reference === undefined ? null : await score(deps, result.text, body.reference, context),
      error: null,
    };
  } catch (err) {
    const error = toApiError(err);
    if (error.status >= 500) logger.error({ err, strategy }, "compare strategy failed");
    return { strategy, content: null, error: { ...error.toBody().error, status: error.status } };
  }
}

function score(deps: ChatDeps, answer: string, reference: string, context: string | undefined) {
  if (!deps.evaluation) throw planeUnavailable("evaluation");
  return deps.evaluation.score(answer, reference, context);
}
