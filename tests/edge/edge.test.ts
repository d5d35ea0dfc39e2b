import { describe, expect, it } from "vitest";
import { consoleLog } from "../../edge/console-log.ts";
import { createEdge } from "../../edge/edge.ts";
import { ApiKeyStore } from "../../services/store/api-keys.ts";
import { openDatabase } from "../../services/store/db.ts";
import { TenantStore } from "../../services/store/tenants.ts";

describe("createEdge with only the tenants and keys ports", () => {
  async function bareEdge() {
    const { db } = openDatabase(":memory:");
    const tenants = new TenantStore(db);
    const keys = new ApiKeyStore(db);
    const tenant = await tenants.create("bare");
    const { key } = await keys.issue("tenant", tenant.id);
    const edge = createEdge(
      { tenants, keys },
      {
        logger: consoleLog("silent"),
        metrics: { observe: () => {} },
        health: { checkDatabase: async () => {} },
        limits: { maxJsonBody: 1024, maxUploadBody: 4096, requestsPerMinute: 0 },
      },
    );
    const call = async (method: string, path: string, auth = true) => {
      const res = await edge.request(path, { method, headers: auth ? { authorization: `Bearer ${key}` } : {} });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
    };
    return { call };
  }

  it("mounts every plane's routes, answering 503 plane_unavailable naming the plane, after auth", async () => {
    const { call } = await bareEdge();
    for (const [method, path, plane] of [
      ["POST", "/v1/chat/completions", "inference"],
      ["POST", "/v1/completions", "inference"],
      ["POST", "/v1/compare", "inference"],
      ["GET", "/v1/usage", "usage"],
      ["GET", "/v1/models", "adapters"],
      ["DELETE", "/v1/adapters/ad_1", "adapters"],
      ["GET", "/v1/knowledge/documents", "knowledge"],
      ["GET", "/v1/files", "files"],
      ["DELETE", "/v1/files/file_1", "files"],
      ["GET", "/v1/fine_tuning/jobs", "trainer"],
      ["POST", "/v1/fine_tuning/jobs/ftjob_1/cancel", "trainer"],
      ["GET", "/v1/fine_tuning/jobs/ftjob_1/metrics", "trainer"],
      ["GET", "/v1/evals/datasets", "evals"],
      ["GET", "/v1/evals/runs/evalrun_1/report.html", "evals"],
      ["GET", "/v1/evals/monitors", "evals"],
      ["GET", "/v1/feedback/summary", "feedback"],
      ["POST", "/v1/chat/completions/chatcmpl-1/feedback", "inference"],
    ] as const) {
      const res = await call(method, path);
      expect({ path, status: res.status, code: res.body.error?.code }).toEqual({ path, status: 503, code: "plane_unavailable" });
      expect(res.body.error?.message).toContain(`The ${plane} plane`);
      expect((await call(method, path, false)).status).toBe(401);
    }
  });

  it("still serves the edge's own routes", async () => {
    const { call } = await bareEdge();
    expect((await call("GET", "/v1/tenant")).status).toBe(200);
    expect((await call("GET", "/health", false)).status).toBe(200);
    expect((await call("GET", "/v1/nothing-here")).status).toBe(404);
  });
});
