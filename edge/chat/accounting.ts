import type { ChatDeps } from "./deps.ts";
import type { Plan } from "./strategy.ts";

export interface Accounting {
  /** The adapter as responses and usage name it (`name@version`). */
  adapterName?: string;
  /** Charges the tenant's token budget and records usage for one finished completion. */
  record(promptTokens: number, completionTokens: number): Promise<void>;
}

export function accountingFor(deps: ChatDeps, tenantId: string, plan: Plan): Accounting {
  const adapterName = plan.adapterName;
  return {
    adapterName,
    async record(promptTokens, completionTokens) {
      await deps.tokenBudget.charge(tenantId, promptTokens + completionTokens);
      await deps.usage.record({ tenantId, strategy: plan.strategy, adapter: adapterName, promptTokens, completionTokens });
    },
  };
}
