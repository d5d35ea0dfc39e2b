import { describe, expect, it } from "vitest";
import { ADMIN, call, tenantWithKey } from "./helpers.ts";

/** What Workers does not run: evaluation runs need a long-lived worker loop (the Node host's EvalWorker). */
const UNAVAILABLE: Array<[method: string, path: string, plane: string, body?: unknown]> = [
  ["GET", "/v1/evals/datasets", "evals"],
  ["POST", "/v1/evals/runs", "evals", { dataset_id: "evalds_x", arms: [{ strategy: "prompt" }] }],
];

describe("planes Workers does not run", () => {
  it("keep their routes, which answer 503 plane_unavailable to a tenant key", async () => {
    const { auth } = await tenantWithKey("planes-co");
    for (const [method, path, plane, body] of UNAVAILABLE) {
      const res = await call(method, path, auth, body);
      expect({ path, status: res.status }).toEqual({ path, status: 503 });
      expect(res.json.error).toMatchObject({ type: "server_error", code: "plane_unavailable", param: null });
      expect(res.json.error.message).toContain(`${plane} plane`);
    }
  });

  it("still ask for a key first: 401 without one, like every tenant route", async () => {
    for (const [method, path, , body] of UNAVAILABLE) {
      const res = await call(method, path, { "content-type": "application/json" }, body);
      expect({ path, status: res.status, type: res.json.error?.type }).toEqual({ path, status: 401, type: "authentication_error" });
    }
  });
});

describe("vLLM's adapter loading on Workers", () => {
  it("is behind the admin key, and loading by path is off (the control node owns the adapter files)", async () => {
    const res = await call("POST", "/v1/load_lora_adapter", ADMIN, { lora_name: "x", lora_path: "x" });
    expect(res.status).toBe(403);
    expect((await call("POST", "/v1/load_lora_adapter", { "content-type": "application/json" }, {})).status).toBe(401);
  });
});

describe("usage on Workers", () => {
  it("is a real plane over D1: GET /v1/usage answers the tenant's (empty) usage", async () => {
    const { auth } = await tenantWithKey("usage-edge-co");
    const res = await call("GET", "/v1/usage", auth);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: "usage", data: [], total: { requests: 0 } });
    expect((await call("GET", "/v1/usage")).status).toBe(401);
  });
});

describe("feedback on Workers", () => {
  it("is a real plane over D1: the summary answers the tenant's (empty) ratings; an unknown completion is not found", async () => {
    const { auth } = await tenantWithKey("feedback-edge-co");
    const res = await call("GET", "/v1/feedback/summary?bucket=day", auth);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: "feedback.summary", group_by: ["adapter", "strategy"], bucket: "day", data: [] });
    const rate = await call("POST", "/v1/chat/completions/chatcmpl-x/feedback", auth, { rating: "up" });
    expect(rate.status).toBe(404);
    expect((await call("GET", "/v1/feedback/summary")).status).toBe(401);
  });
});
