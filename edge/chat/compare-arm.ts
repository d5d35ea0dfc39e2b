import { planeUnavailable, type AnswerScores, type Tenant } from "../../ports/index.ts";
import type { ApiError } from "../errors.ts";
import type { Log } from "../env.ts";
import { toApiError } from "../middleware/errors.ts";
import type { Strategy } from "../tenant-settings.ts";
import { accountingFor } from "./accounting.ts";
import { finalTimings, generate, prepareCompletion } from "./completion.ts";
import type { ChatDeps } from "./deps.ts";
import { extensionJson } from "./openai-format.ts";
import type { CompareBody } from "./schema.ts";
import { planRequest, usesRetrieval } from "./strategy.ts";

/** How one strategy's answer ends: its usage, the `switchyard` extension and, given a reference, its scores. */
export interface ArmResult {
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
  extension: ReturnType<typeof extensionJson>;
  scores: AnswerScores | null;
}

/** One strategy of a compare as events: its text as it is generated, then exactly one `done` or `error`. */
export type ArmEvent = { type: "text"; text: string } | { type: "done"; result: ArmResult } | { type: "error"; error: ApiError };

export interface ArmContext {
  deps: ChatDeps;
  tenant: Tenant;
  body: CompareBody;
  signal: AbortSignal;
  logger: Log;
  startedAt: number;
}

/**
 * Runs one strategy of a compare through the chat pipeline (plan, prompt, token budget, engine, usage,
 * scores). A failure at any point, before or after tokens, becomes its `error` event, never a throw:
 * one failing strategy never sinks the others. Failures of a request the client abandoned are not logged.
 */
export async function* runArm(ctx: ArmContext, strategy: Strategy): AsyncGenerator<ArmEvent> {
  const { deps, tenant, body } = ctx;
  try {
    const plan = await planRequest(deps.resolveModel, tenant, body.model, strategy);
    const prepared = await prepareCompletion(deps, tenant, body, plan);
    await deps.tokenBudget.check(tenant, prepared.promptTokens.length);
    let text = "";
    for await (const event of generate(deps, prepared, ctx.signal)) {
      if (event.type === "prompt") continue;
      if (event.type === "text") {
        text += event.text;
        yield { type: "text", text: event.text };
        continue;
      }
      const timings = finalTimings(prepared, event, ctx.startedAt);
      const accounting = accountingFor(deps, tenant.id, plan);
      await accounting.record(event.promptTokens, event.completionTokens);
      const context = usesRetrieval(strategy) ? prepared.sources.map((s) => s.text).join("\n") : undefined;
      const scores = body.reference === undefined ? null : await score(deps, text, body.reference, context);
      const { finishReason, promptTokens, completionTokens } = event;
      yield { type: "done", result: { finishReason, promptTokens, completionTokens, extension: extensionJson(prepared, accounting.adapterName, timings), scores } };
      return;
    }
    throw new Error("the inference stream ended without a final event");
  } catch (err) {
    const error = toApiError(err);
    if (error.status >= 500 && !ctx.signal.aborted) ctx.logger.error({ err, strategy }, "compare strategy failed");
    yield { type: "error", error };
  }
}

function score(deps: ChatDeps, answer: string, reference: string, context: string | undefined) {
  if (!deps.evaluation) throw planeUnavailable("evaluation");
  return deps.evaluation.score(answer, reference, context);
}
