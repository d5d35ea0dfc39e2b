import { describe, expect, it } from "vitest";
import { ADMIN, call, tenantWithKey } from "./helpers.ts";

/** The planes Workers has no node for yet (adapters, files, trainer, evals): one request per route group. */
const UNAVAILABLE: Array<[method: string, path: string, plane: string, body?: unknown]> = [
  ["GET", "/v1/models", "adapters"],
  ["GET", "/v1/models/anything", "adapters"],
  ["GET", "/v1/adapters", "adapters"],
  ["GET", "/v1/files", "files"],
  ["GET", "/v1/files/file_x/content", "files"],
  ["POST", "/v1/fine_tuning/jobs", "trainer", { model: "m", training_file: "file_x" }],
  ["GET", "/v1/fine_tuning/jobs", "trainer"],
  ["GET", "/v1/fine_tuning/jobs/ftjob_x/events", "trainer"],
  ["GET", "/v1/evals", "evals"],
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

  it("answer 503 on the admin adapter routes and vLLM's load/unload endpoints behind the admin key", async () => {
    for (const path of ["/v1/admin/adapters", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"]) {
      const res = await call("POST", path, ADMIN, { lora_name: "x", lora_path: "x" });
      expect({ path, status: res.status, code: res.json.error.code }).toEqual({ path, status: 503, code: "plane_unavailable" });
      expect((await call("POST", path, { "content-type": "application/json" }, {})).status).toBe(401);
    }
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
