/**
 * The Usage port's contract. Times here fall on minute boundaries: an implementation may count
 * usage per minute (the SQLite store does), so a window's bounds are only exact at whole minutes.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { Usage, UsageLine } from "../../ports/usage.ts";

export interface UsageFixture {
  usage: Usage;
  /** Two existing tenants. */
  tenants: [string, string];
}

const MINUTE = 60_000;
const T0 = 1_800_000_000_000; // a minute boundary

const sorted = (lines: UsageLine[]) => [...lines].sort((x, y) => x.strategy.localeCompare(y.strategy) || x.adapter.localeCompare(y.adapter));

export function usageContract(name: string, open: () => Promise<UsageFixture>): void {
  describe(`Usage port: ${name}`, () => {
    let usage: Usage;
    let a: string;
    let b: string;
    beforeEach(async () => {
      const fx = await open();
      usage = fx.usage;
      [a, b] = fx.tenants;
    });

    it("sums requests and tokens per strategy and adapter", async () => {
      await usage.record({ tenantId: a, strategy: "prompt", promptTokens: 10, completionTokens: 5, at: T0 + 1_000 });
      await usage.record({ tenantId: a, strategy: "prompt", promptTokens: 3, completionTokens: 2, at: T0 + MINUTE + 30_000 });
      await usage.record({ tenantId: a, strategy: "rag", adapter: "faq@1", promptTokens: 7, completionTokens: 1, at: T0 + 2_000 });
      await usage.record({ tenantId: a, strategy: "rag", promptTokens: 4, completionTokens: 4, at: T0 + 3_000 });
      expect(sorted(await usage.summary(a, T0, T0 + 2 * MINUTE))).toEqual([
        { strategy: "prompt", adapter: "", requests: 2, promptTokens: 13, completionTokens: 7 },
        { strategy: "rag", adapter: "", requests: 1, promptTokens: 4, completionTokens: 4 },
        { strategy: "rag", adapter: "faq@1", requests: 1, promptTokens: 7, completionTokens: 1 },
      ]);
    });

    it("counts over [from, to): from included, to excluded", async () => {
      await usage.record({ tenantId: a, strategy: "prompt", promptTokens: 1, completionTokens: 1, at: T0 });
      await usage.record({ tenantId: a, strategy: "prompt", promptTokens: 2, completionTokens: 2, at: T0 + MINUTE });
      await usage.record({ tenantId: a, strategy: "prompt", promptTokens: 4, completionTokens: 4, at: T0 + 2 * MINUTE });
      const tokens = async (from: number, to: number) => (await usage.summary(a, from, to)).reduce((sum, l) => sum + l.promptTokens, 0);
      expect(await tokens(T0, T0 + MINUTE)).toBe(1);
      expect(await tokens(T0 + MINUTE, T0 + 3 * MINUTE)).toBe(6);
      expect(await tokens(T0, T0 + 3 * MINUTE)).toBe(7);
      expect(await usage.summary(a, T0 + 3 * MINUTE, T0 + 10 * MINUTE)).toEqual([]);
    });

    it("keeps tenants apart", async () => {
      await usage.record({ tenantId: a, strategy: "prompt", promptTokens: 10, completionTokens: 5, at: T0 });
      await usage.record({ tenantId: b, strategy: "prompt", promptTokens: 50, completionTokens: 50, at: T0 });
      expect(await usage.summary(a, T0, T0 + MINUTE)).toEqual([{ strategy: "prompt", adapter: "", requests: 1, promptTokens: 10, completionTokens: 5 }]);
      expect(await usage.summary(b, T0, T0 + MINUTE)).toEqual([{ strategy: "prompt", adapter: "", requests: 1, promptTokens: 50, completionTokens: 50 }]);
    });

    it("records at the current time when `at` is left out", async () => {
      await usage.record({ tenantId: a, strategy: "adapter", adapter: "x@2", promptTokens: 3, completionTokens: 9 });
      const now = Date.now();
      expect(await usage.summary(a, now - 2 * MINUTE, now + MINUTE)).toEqual([{ strategy: "adapter", adapter: "x@2", requests: 1, promptTokens: 3, completionTokens: 9 }]);
      expect(await usage.summary(a, now + MINUTE, now + 2 * MINUTE)).toEqual([]);
    });
  });
}
