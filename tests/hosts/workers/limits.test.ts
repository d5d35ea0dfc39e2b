import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker, { type WorkerEnv } from "../../../hosts/workers/worker.ts";
import { ADMIN, call, tenantWithKey } from "./helpers.ts";

const DB = (env as unknown as { DB: D1Database }).DB;

/** The tenant's row as D1 holds it. */
async function storedTenant(id: string): Promise<{ settings: unknown; limits: unknown }> {
  const row = await DB.prepare("SELECT settings, limits FROM tenants WHERE id = ?").bind(id).first<{ settings: string; limits: string }>();
  return { settings: JSON.parse(row!.settings), limits: JSON.parse(row!.limits) };
}

describe("rate limits on D1", () => {
  it("answers 429 with Retry-After past the tenant's requests per minute, and follows a raised limit", async () => {
    const { id, auth } = await tenantWithKey("limited", { requestsPerMinute: 2 });
    expect((await storedTenant(id)).limits).toEqual({ requestsPerMinute: 2 });
    expect((await call("GET", "/v1/tenant", auth)).status).toBe(200);
    expect((await call("GET", "/v1/tenant", auth)).status).toBe(200);
    const limited = await call("GET", "/v1/tenant", auth);
    expect(limited.status).toBe(429);
    expect(limited.json.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded", param: null });
    expect(limited.json.error.message).toContain("2 requests per minute");
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);

    // The limit is read from D1 on every request: raising it lets the next one through at once.
    const raised = await call("PATCH", `/v1/admin/tenants/${id}`, ADMIN, { limits: { requestsPerMinute: 3 } });
    expect(raised.json.limits).toEqual({ requestsPerMinute: 3 });
    expect((await storedTenant(id)).limits).toEqual({ requestsPerMinute: 3 });
    expect((await call("GET", "/v1/tenant", auth)).status).toBe(200); // the refused request was not counted
    expect((await call("GET", "/v1/tenant", auth)).status).toBe(429);
  });

  it("limits each tenant on its own", async () => {
    const busy = await tenantWithKey("busy", { requestsPerMinute: 1 });
    const quiet = await tenantWithKey("quiet", { requestsPerMinute: 1 });
    expect((await call("GET", "/v1/tenant", busy.auth)).status).toBe(200);
    expect((await call("GET", "/v1/tenant", busy.auth)).status).toBe(429);
    expect((await call("GET", "/v1/tenant", quiet.auth)).status).toBe(200);
  });

  it("refuses bad limits naming the field, and stores nothing", async () => {
    const { id } = await tenantWithKey("strict", { requestsPerMinute: 5 });
    const bad = await call("PATCH", `/v1/admin/tenants/${id}`, ADMIN, { limits: { requestsPerMinute: -1 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ type: "invalid_request_error", param: "limits.requestsPerMinute" });
    expect((await storedTenant(id)).limits).toEqual({ requestsPerMinute: 5 });
  });
});

/**
 * A second edge, as another isolate has it: worker.ts builds one edge per env object, so a copy of the env
 * gets an edge of its own, with nothing in memory from the first. What it refuses, it refuses from the
 * shared counter (the RateLimiter Durable Object).
 */
async function viaOtherEdge(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  const other = { ...(env as unknown as WorkerEnv) };
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`https://edge.test${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }), other, ctx);
  await waitOnExecutionContext(ctx);
  return { status: res.status, json: (await res.json()) as { error?: { code: string } } };
}

describe("limits on the shared counter (a Durable Object per tenant and counter)", () => {
  it("holds requests per minute across edges: the second edge refuses what the first spent", async () => {
    const { auth } = await tenantWithKey("shared-requests", { requestsPerMinute: 1 });
    expect((await call("GET", "/v1/tenant", auth)).status).toBe(200);
    const refused = await viaOtherEdge("GET", "/v1/tenant", auth);
    expect(refused.status).toBe(429);
    expect(refused.json.error?.code).toBe("rate_limit_exceeded");
  });

  it("holds token budgets across edges: tokens a chat spent on one edge count on the other", async () => {
    const { auth } = await tenantWithKey("shared-tokens", { tokensPerMinute: 40 });
    const chat = { temperature: 0, max_tokens: 24, messages: [{ role: "user", content: "Tell me a story about a cat." }] };
    const first = await call("POST", "/v1/chat/completions", auth, chat);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json.usage.total_tokens).toBeGreaterThanOrEqual(40);
    const refused = await viaOtherEdge("POST", "/v1/chat/completions", auth, chat);
    expect(refused.status).toBe(429);
    expect(refused.json.error?.code).toBe("tokens_rate_limit_exceeded");
  });
});

describe("tenant settings on D1", () => {
  it("round-trips every setting through D1, resets with null, and refuses bad values naming the field", async () => {
    const { id, auth } = await tenantWithKey("settings");
    const initial = await call("GET", "/v1/tenant", auth);
    expect(initial.json.settings).toEqual({ defaultAdapter: null, defaultStrategy: "prompt", systemPrompt: null, fewShot: [], chunkSize: 256, chunkOverlap: 32 });

    const patch = { defaultStrategy: "rag", systemPrompt: "From the edge.", fewShot: [{ user: "Hi", assistant: "Hello!" }], chunkSize: 128, chunkOverlap: 16 };
    const updated = await call("PATCH", "/v1/tenant", auth, patch);
    expect(updated.status).toBe(200);
    expect(updated.json.settings).toMatchObject(patch);
    expect((await storedTenant(id)).settings).toEqual(patch);
    expect((await call("GET", "/v1/tenant", auth)).json.settings).toMatchObject(patch);

    const reset = await call("PATCH", "/v1/tenant", auth, { systemPrompt: null, fewShot: [] });
    expect(reset.json.settings).toEqual({ defaultAdapter: null, defaultStrategy: "rag", systemPrompt: null, fewShot: [], chunkSize: 128, chunkOverlap: 16 });
    const stored = { defaultStrategy: "rag", fewShot: [], chunkSize: 128, chunkOverlap: 16 }; // null removes the key
    expect((await storedTenant(id)).settings).toEqual(stored);

    for (const [body, param] of [
      [{ defaultStrategy: "magic" }, "defaultStrategy"],
      [{ chunkSize: "big" }, "chunkSize"],
      [{ fewShot: [{ user: "only a question" }] }, "fewShot.0.assistant"],
    ] as const) {
      const bad = await call("PATCH", "/v1/tenant", auth, body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.json.error).toMatchObject({ type: "invalid_request_error", param });
    }
    expect((await storedTenant(id)).settings).toEqual(stored);
  });
});
