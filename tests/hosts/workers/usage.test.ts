import { env } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import { describe, expect, it } from "vitest";
import * as schema from "../../../services/store/schema.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { UsageStore } from "../../../services/store/usage.ts";

const DB = (env as unknown as { DB: D1Database }).DB;
const db = drizzle(DB, { schema });
const MINUTE = 60_000;
const T0 = 1_800_000_000_000; // a minute boundary

describe("usage accounting on D1", () => {
  it("adds up a tenant's requests per minute, strategy and adapter, in one row each", async () => {
    const tenants = new TenantStore(db);
    const [acme, other] = [await tenants.create("usage-acme"), await tenants.create("usage-other")];
    const usage = new UsageStore(db);
    await usage.record({ tenantId: acme.id, strategy: "prompt", promptTokens: 10, completionTokens: 5, at: T0 + 1_000 });
    await usage.record({ tenantId: acme.id, strategy: "prompt", promptTokens: 7, completionTokens: 3, at: T0 + 59_999 }); // same minute: same row
    await usage.record({ tenantId: acme.id, strategy: "prompt", promptTokens: 1, completionTokens: 1, at: T0 + MINUTE }); // next minute
    await usage.record({ tenantId: acme.id, strategy: "adapter", adapter: "ad_1", promptTokens: 4, completionTokens: 6, at: T0 + 2_000 });
    await usage.record({ tenantId: acme.id, strategy: "prompt", promptTokens: 100, completionTokens: 100, at: T0 + 5 * MINUTE }); // after the range
    await usage.record({ tenantId: other.id, strategy: "prompt", promptTokens: 50, completionTokens: 50, at: T0 + 1_000 });

    const rows = await DB.prepare("SELECT bucket, strategy, adapter, requests, prompt_tokens, completion_tokens FROM usage WHERE tenant_id = ? ORDER BY bucket, strategy")
      .bind(acme.id)
      .all();
    expect(rows.results).toEqual([
      { bucket: T0, strategy: "adapter", adapter: "ad_1", requests: 1, prompt_tokens: 4, completion_tokens: 6 },
      { bucket: T0, strategy: "prompt", adapter: "", requests: 2, prompt_tokens: 17, completion_tokens: 8 },
      { bucket: T0 + MINUTE, strategy: "prompt", adapter: "", requests: 1, prompt_tokens: 1, completion_tokens: 1 },
      { bucket: T0 + 5 * MINUTE, strategy: "prompt", adapter: "", requests: 1, prompt_tokens: 100, completion_tokens: 100 },
    ]);

    expect(await usage.summary(acme.id, T0, T0 + 2 * MINUTE)).toEqual([
      { strategy: "adapter", adapter: "ad_1", requests: 1, promptTokens: 4, completionTokens: 6 },
      { strategy: "prompt", adapter: "", requests: 3, promptTokens: 18, completionTokens: 9 },
    ]);
    expect(await usage.summary(other.id, T0, T0 + 2 * MINUTE)).toEqual([{ strategy: "prompt", adapter: "", requests: 1, promptTokens: 50, completionTokens: 50 }]);
    expect(await usage.summary(acme.id, T0 + 10 * MINUTE, T0 + 20 * MINUTE)).toEqual([]);
  });
});
