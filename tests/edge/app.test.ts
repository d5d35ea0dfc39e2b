import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createApp } from "../../edge/app.ts";
import { ConfigError, loadConfig } from "../../hosts/node/config.ts";
import { consoleLog } from "../../edge/console-log.ts";
import type { AppEnv } from "../../edge/env.ts";
import { ApiKeyStore } from "../../services/store/api-keys.ts";
import { openDatabase } from "../../services/store/db.ts";
import { TenantStore } from "../../services/store/tenants.ts";

async function appWithPlane(plane: Hono<AppEnv>) {
  const { db } = openDatabase(":memory:");
  const tenants = new TenantStore(db);
  const keys = new ApiKeyStore(db);
  const tenant = await tenants.create("t");
  const { key } = await keys.issue("tenant", tenant.id);
  const app = createApp({
    logger: consoleLog("silent"),
    metrics: { observe: () => {} },
    health: { checkDatabase: async () => {} },
    tenants,
    keys,
    limits: { maxJsonBody: 1024, maxUploadBody: 4096, requestsPerMinute: 0 },
    planes: [["/plane", plane]],
  });
  return { app, auth: { authorization: `Bearer ${key}` } };
}

describe("edge app", () => {
  it("turns an unexpected error into a 500 without internals", async () => {
    const plane = new Hono<AppEnv>().get("/boom", () => {
      throw new Error("secret stack detail: /etc/passwd");
    });
    const { app, auth } = await appWithPlane(plane);
    const res = await app.request("/v1/plane/boom", { headers: auth });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: Record<string, unknown> };
    expect(body.error).toEqual({ message: expect.any(String), type: "server_error", param: null, code: "internal_error" });
    expect(JSON.stringify(body)).not.toContain("passwd");
  });

  it("mounts planes behind tenant auth and applies the upload limit to uploads only", async () => {
    const plane = new Hono<AppEnv>().post("/upload", async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength, tenant: c.get("tenant").name }));
    const { app, auth } = await appWithPlane(plane);
    expect((await app.request("/v1/plane/upload", { method: "POST" })).status).toBe(401);
    const upload = (size: number, type: string) =>
      app.request("/v1/plane/upload", { method: "POST", headers: { ...auth, "content-type": type }, body: new Uint8Array(size) });
    expect(await (await upload(3000, "application/octet-stream")).json()).toEqual({ bytes: 3000, tenant: "t" });
    expect((await upload(5000, "application/octet-stream")).status).toBe(413);
    expect((await upload(3000, "application/json")).status).toBe(413);
  });
});

describe("configuration", () => {
  it("reads env and flags, flags winning, with defaults", () => {
    const config = loadConfig({ SWITCHYARD_PORT: "9000", SWITCHYARD_MAX_JSON_BODY: "2mb" }, ["--port", "9100", "--host=0.0.0.0"]);
    expect(config).toMatchObject({ port: 9100, host: "0.0.0.0", dataDir: "./data", maxJsonBody: 2 * 1024 * 1024, maxAdaptersPerBatch: 32 });
    expect(loadConfig({ SWITCHYARD_MAX_ADAPTERS_PER_BATCH: "4" }).maxAdaptersPerBatch).toBe(4);
  });

  it("names the variable or flag of a bad value in one line", () => {
    expect(() => loadConfig({ SWITCHYARD_PORT: "eighty" })).toThrow(/^invalid configuration: SWITCHYARD_PORT="eighty": /);
    expect(() => loadConfig({}, ["--log-level", "loud"])).toThrow(/--log-level="loud"/);
    expect(() => loadConfig({ SWITCHYARD_ADMIN_KEY: "short" })).toThrow(/SWITCHYARD_ADMIN_KEY.*16 characters/);
    expect(() => loadConfig({}, ["--bogus", "1"])).toThrow(ConfigError);
    expect(() => loadConfig({}, ["--port"])).toThrow(/needs a value/);
    expect(() => loadConfig({}, ["--max-adapters-per-batch", "0"])).toThrow(/--max-adapters-per-batch="0"/);
  });
});
