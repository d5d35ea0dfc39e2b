import type { Evaluation, Feedback, Usage } from "../../ports/index.ts";
import type { MonitoringMetrics } from "../monitoring/metrics.ts";
import type { TokenBudget } from "../middleware/rate-limit.ts";
import type { ModelResolver } from "./strategy.ts";
import type { CompletionDeps } from "./completion.ts";

/** What the chat, compare and usage routes need from the planes behind the edge. */
export interface ChatDeps extends CompletionDeps {
  /** Reads `model` for a tenant, with the adapter's display name (`name@version`) for responses and usage. */
  resolveModel: ModelResolver;
  usage: Usage;
  /** Scores compare answers against a reference; absent: scoring answers 503 plane_unavailable. */
  evaluation?: Evaluation;
  tokenBudget: TokenBudget;
  /** Cancels a stream whose client has not read for this long (0 or absent: never). */
  streamStallTimeoutMs?: number;
  /** Keeps served chat completions for ratings and input drift; absent: the feedback route answers 503. */
  feedback?: Feedback;
  monitoringMetrics?: MonitoringMetrics;
}
