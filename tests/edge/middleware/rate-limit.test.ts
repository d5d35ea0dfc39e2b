import { describe, expect, it } from "vitest";
import { createApp } from "../../../edge/app.ts";
import { consoleLog } from "../../../edge/console-log.ts";
import { ApiError } from "../../../edge/errors.ts";
import { SlidingWindow, TokenBudget } from "../../../edge/middleware/rate-limit.ts";
import { ApiKeyStore } from "../../../services/store/api-keys.ts";
import { openDatabase } from "../../../services/store/db.ts";
import { TenantStore } from "../../../services/store/tenants.ts";

/** A clock the test moves by hand, in unix ms. */
function manualClock(start = 1_800_000_000_000) {
  const clock = { at: start, now: () => clock.at, advance: (ms: number) => void (clock.at += ms) };
  return clock;
}

/** What `check` threw: the 429 with its Retry-After and code, or "ok" when the budget allows it. */
async function tokenCheck(budget: TokenBudget, tenant: { id: string; limits: Record<string, unknown> }, promptTokens: number) {
  try {
    await budget.check(tenant, promptTokens);
    return "ok";
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { status: err.status, code: err.toBody().error.code, retryAfter: err.headers["Retry-After"] };
  }
}

describe("requests per minute, over HTTP, on an injected clock", () => {
  async function limitedApp(requestsPerMinute: number) {
    const { db } = openDatabase(":memory:");
    const tenants = new TenantStore(db);
    const keys = new ApiKeyStore(db);
    const tenant = await tenants.create("limited", {}, { requestsPerMinute });
    const { key } = await keys.issue("tenant", tenant.id);
    const clock = manualClock();
    const app = createApp({
      logger: consoleLog("silent"),
      metrics: { observe: () => {} },
      health: { checkDatabase: async () => {} },
      tenants,
      keys,
      limits: { maxJsonBody: 1024, maxUploadBody: 4096, requestsPerMinute: 0 },
      now: clock.now,
    });
    const get = async () => {
      const res = await app.request("/v1/tenant", { headers: { authorization: `Bearer ${key}` } });
      return { status: res.status, retryAfter: res.headers.get("retry-after") };
    };
    return { get, clock };
  }

  it("refuses the request over the limit until the oldest one leaves the 60 s window", async () => {
    const { get, clock } = await limitedApp(2);
    expect(await get()).toEqual({ status: 200, retryAfter: null }); // t = 0
    clock.advance(20_000);
    expect(await get()).toEqual({ status: 200, retryAfter: null }); // t = 20 s
    clock.advance(10_000);
    expect(await get()).toEqual({ status: 429, retryAfter: "30" }); // t = 30 s: the first leaves at 60 s
    clock.advance(29_999);
    expect(await get()).toEqual({ status: 429, retryAfter: "1" }); // 1 ms before it leaves
    clock.advance(1);
    expect(await get()).toEqual({ status: 200, retryAfter: null }); // t = 60 s: the first has left
    expect(await get()).toEqual({ status: 429, retryAfter: "20" }); // the one from 20 s leaves at 80 s
    clock.advance(60_000);
    expect(await get()).toEqual({ status: 200, retryAfter: null });
    expect(await get()).toEqual({ status: 200, retryAfter: null }); // a whole quiet minute frees both slots
  });

  it("does not count refused requests against the window", async () => {
    const { get, clock } = await limitedApp(1);
    expect((await get()).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      clock.advance(10_000);
      expect((await get()).status).toBe(429);
    }
    clock.advance(10_000); // 60 s after the only accepted request
    expect((await get()).status).toBe(200);
  });
});

describe("tokens per minute on an injected clock", () => {
  const tenant = { id: "ten_tokens", limits: { tokensPerMinute: 100 } };

  it("charges the tokens used and frees them as their minute passes", async () => {
    const clock = manualClock();
    const budget = new TokenBudget(new SlidingWindow(clock.now));
    expect(await tokenCheck(budget, tenant, 90)).toBe("ok");
    await budget.charge(tenant.id, 70); // t = 0
    clock.advance(15_000);
    await budget.charge(tenant.id, 25); // t = 15 s: 95 spent
    expect(await tokenCheck(budget, tenant, 5)).toBe("ok");
    expect(await tokenCheck(budget, tenant, 6)).toEqual({ status: 429, code: "tokens_rate_limit_exceeded", retryAfter: "45" });
    clock.advance(44_999);
    expect(await tokenCheck(budget, tenant, 6)).toEqual({ status: 429, code: "tokens_rate_limit_exceeded", retryAfter: "1" });
    clock.advance(1); // t = 60 s: the 70 have left, 25 remain
    expect(await tokenCheck(budget, tenant, 75)).toBe("ok");
    expect(await tokenCheck(budget, tenant, 76)).toEqual({ status: 429, code: "tokens_rate_limit_exceeded", retryAfter: "15" });
    clock.advance(15_000); // t = 75 s: nothing remains
    expect(await tokenCheck(budget, tenant, 100)).toBe("ok");
  });

  it("lets a prompt larger than the whole budget run once the window is empty, never before", async () => {
    const clock = manualClock();
    const budget = new TokenBudget(new SlidingWindow(clock.now));
    expect(await tokenCheck(budget, tenant, 500)).toBe("ok"); // capped at the budget: it could never fit otherwise
    await budget.charge(tenant.id, 1);
    expect(await tokenCheck(budget, tenant, 500)).toEqual({ status: 429, code: "tokens_rate_limit_exceeded", retryAfter: "60" });
    clock.advance(60_000);
    expect(await tokenCheck(budget, tenant, 500)).toBe("ok");
  });

  it("does not limit a tenant without tokensPerMinute", async () => {
    const budget = new TokenBudget(new SlidingWindow(manualClock().now));
    await budget.charge("ten_free", 1_000_000);
    expect(await tokenCheck(budget, { id: "ten_free", limits: {} }, 1_000_000)).toBe("ok");
  });
});
