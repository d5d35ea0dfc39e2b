import type { Usage } from "../../ports/usage.ts";
import type { TokenBudget } from "../middleware/rate-limit.ts";
import type { ModelResolver } from "./strategy.ts";
import type { CompletionDeps } from "./completion.ts";

/** What the chat, compare and usage routes need from the planes behind the edge. */
export interface ChatDeps extends CompletionDeps {
  resolveModel: ModelResolver;
  /** A display name for an adapter id (`name@version`), for responses and usage. */
  adapterName(adapterId: string): string | undefined;
  usage: Usage;
  tokenBudget: TokenBudget;
  /** Cancels a stream whose client has not read for this long (0 or absent: never). */
  streamStallTimeoutMs?: number;
}
