/**
 * Runs an evaluation: every item of the dataset through every arm, each through the chat pipeline the
 * chat endpoint uses (planRequest, prepareCompletion, generate, collect, usage), scored by the
 * Evaluation port and, where the item names relevant documents, by retrieval recall/precision/MRR.
 *
 * Invariants: each item × arm result is recorded once, as soon as it finishes, and results already
 * stored are skipped, so a run stopped at any point (cancel, shutdown, crash) resumes where it was.
 * A failing item × arm (missing adapter, context too long) is recorded as errored, and the rest go on.
 * An item's arms run concurrently, so the engine batches them. The run's status is re-read before each
 * item, so a cancel stops it within one item.
 */
import type { EvalArm, EvalDataset, EvalItem, EvalResult, EvalRun, Evals } from "../../ports/evals.ts";
import type { Tenant } from "../../ports/tenants.ts";
import { accountingFor } from "../chat/accounting.ts";
import { collect, generate, prepareCompletion } from "../chat/completion.ts";
import type { ChatDeps } from "../chat/deps.ts";
import type { GenerationBody } from "../chat/schema.ts";
import { planRequest, usesRetrieval } from "../chat/strategy.ts";
import { toApiError } from "../middleware/errors.ts";
import { retrievalScores } from "./retrieval-metrics.ts";

export type EvalChatDeps = Pick<ChatDeps, "inference" | "retrieval" | "resolveModel" | "usage" | "evaluation" | "tokenBudget">;

/** Greedy and short unless an arm's sampling says otherwise: comparable, reproducible answers. */
export const DEFAULT_SAMPLING = { temperature: 0, max_tokens: 64 } as const;

export type RunOutcome = "succeeded" | "cancelled" | "stopped";

/** Runs what is left of `run`; "stopped" when `signal` aborted (the run stays running, to be resumed). */
export async function executeRun(evals: Evals, chat: EvalChatDeps, tenant: Tenant, run: EvalRun, dataset: EvalDataset, signal: AbortSignal): Promise<RunOutcome> {
  const done = new Set((await evals.results(run.id)).map((r) => key(r.item, r.arm)));
  if (done.size > 0) await evals.addEvent(run.id, "info", `Resuming: ${done.size} of ${run.total} results already stored.`);
  for (const [itemIndex, item] of dataset.items.entries()) {
    if (signal.aborted) return "stopped";
    if ((await evals.getRun(run.tenantId, run.id))?.status === "cancelled") return "cancelled";
    // An item's arms run side by side (the engine batches them); each is stored as it finishes.
    const pending = [...run.spec.arms.entries()].filter(([armIndex]) => !done.has(key(itemIndex, armIndex)));
    await Promise.all(
      pending.map(async ([armIndex, arm]) => {
        const result = await runItem(chat, tenant, item, itemIndex, arm, armIndex, signal);
        if (!signal.aborted) await evals.recordResult(run.id, result);
      }),
    );
    if (signal.aborted) return "stopped";
  }
  return "succeeded";
}

const key = (item: number, arm: number) => `${item}:${arm}`;

/** One item through one arm: its answer and scores, or its error. */
export async function runItem(chat: EvalChatDeps, tenant: Tenant, item: EvalItem, itemIndex: number, arm: EvalArm, armIndex: number, stop: AbortSignal): Promise<EvalResult> {
  // A signal of its own, linked to the run's: whatever listens to it goes with the item.
  const own = new AbortController();
  const onStop = () => own.abort();
  stop.addEventListener("abort", onStop, { once: true });
  try {
    return await answerItem(chat, tenant, item, itemIndex, arm, armIndex, own.signal);
  } finally {
    stop.removeEventListener("abort", onStop);
  }
}

async function answerItem(chat: EvalChatDeps, tenant: Tenant, item: EvalItem, itemIndex: number, arm: EvalArm, armIndex: number, signal: AbortSignal): Promise<EvalResult> {
  const startedAt = performance.now();
  const empty = { item: itemIndex, arm: armIndex, promptTokens: 0, completionTokens: 0, ttftMs: 0, totalMs: 0, sources: [], scores: {} };
  try {
    const body = { ...DEFAULT_SAMPLING, ...arm.sampling, messages: item.messages, retrieval: arm.retrieval } as GenerationBody;
    const plan = await planRequest(chat.resolveModel, tenant, arm.adapter, arm.strategy);
    const prepared = await prepareCompletion(chat, tenant, body, plan);
    const completion = await collect(generate(chat, prepared, signal), prepared, startedAt);
    const accounting = accountingFor(chat as ChatDeps, tenant.id, plan);
    await accounting.record(completion.promptTokens, completion.completionTokens);
    const sources = prepared.sources.map((s) => ({ documentId: s.documentId, title: s.title, score: s.score }));
    const context = usesRetrieval(plan.strategy) ? prepared.sources.map((s) => s.text).join("\n") : undefined;
    const scores: Record<string, number> = { ...(await score(chat, completion.text, item.reference, context)) };
    if (item.relevantDocuments && usesRetrieval(plan.strategy)) Object.assign(scores, retrievalScores(sources, item.relevantDocuments));
    return {
      ...empty,
      answer: completion.text,
      promptTokens: completion.promptTokens,
      completionTokens: completion.completionTokens,
      ttftMs: completion.timings.retrievalMs + completion.timings.firstTokenMs,
      totalMs: completion.timings.totalMs,
      sources,
      ...(accounting.adapterName ? { adapter: accounting.adapterName } : {}),
      scores,
    };
  } catch (err) {
    const error = toApiError(err);
    return { ...empty, totalMs: performance.now() - startedAt, error: { code: error.code ?? error.type, message: error.message } };
  }
}

async function score(chat: EvalChatDeps, answer: string, reference: string, context: string | undefined) {
  if (!chat.evaluation) throw new Error("the evaluation plane is not available");
  return chat.evaluation.score(answer, reference, context);
}
