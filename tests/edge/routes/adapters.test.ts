import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAdapterService, type AdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { adapters, tenants, type Tenant } from "../../../services/store/schema.ts";
import { eq } from "drizzle-orm";
import type { AppEnv } from "../../../edge/env.ts";
import { ApiError } from "../../../edge/errors.ts";
import { adapterRoutes } from "../../../edge/routes/adapters.ts";
import { modelRoutes, resolveModelField } from "../../../edge/routes/models.ts";
import { STORIES, tarGzOf, utf8, zipOf } from "../../helpers/adapters.ts";

let dataDir: string;
let store: OpenDatabase;
let service: AdapterService;
let app: Hono<AppEnv>;

const good = randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj", "v_proj"] }).files;
const MAX_UPLOAD = 1 << 20;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "adapters-routes-"));
  store = openDatabase(join(dataDir, "switchyard.db"));
  store.db.insert(tenants).values([{ id: "t_acme", name: "Acme" }, { id: "t_globex", name: "Globex" }]).run();
  service = await createAdapterService({ db: store.db, dataDir, base: { id: "stories260k", shape: STORIES }, limits: { maxRank: 16 }, cacheBudgetBytes: 16 << 20, maxUploadBytes: MAX_UPLOAD });
  const { catalog } = service;
  app = new Hono<AppEnv>();
  // Stands in for the lead's auth: X-Tenant picks the tenant (fresh from the store), X-Role the role.
  app.use("*", async (c, next) => {
    const tenantId = c.req.header("x-tenant");
    if (tenantId) c.set("tenant", store.db.select().from(tenants).where(eq(tenants.id, tenantId)).get() as Tenant);
    c.set("role", c.req.header("x-role") === "admin" ? "admin" : "tenant");
    await next();
  });
  app.route("/v1/adapters", adapterRoutes({ catalog, tenants: new TenantStore(store.db), maxUploadBytes: MAX_UPLOAD }));
  app.route("/v1/models", modelRoutes({ catalog }));
  app.onError((e, c) => (e instanceof ApiError ? c.json(e.toBody(), e.status) : c.json({ error: { message: String(e) } }, 500)));
});

afterEach(() => {
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const blob = (bytes: Uint8Array) => new Blob([new Uint8Array(bytes)]);

function upload(tenant: string, fields: Record<string, string | [Uint8Array, string]>, headers: Record<string, string> = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === "string") form.append(k, v);
    else form.append(k, blob(v[0]), v[1]);
  }
  return app.request("/v1/adapters", { method: "POST", body: form, headers: { "x-tenant": tenant, ...headers } });
}

const get = (path: string, tenant: string) => app.request(path, { headers: { "x-tenant": tenant } });
const nothingLeft = () => {
  expect(store.db.select().from(adapters).all()).toEqual([]);
  expect(readdirSync(join(dataDir, "adapters"))).toEqual([]);
};

describe("adapter routes", () => {
  it("uploads a zip, a tar.gz and a multipart pair; versions grow by name", async () => {
    const zip = zipOf({ "adapter_config.json": good.config, "adapter_model.safetensors": good.model });
    const first = await upload("t_acme", { name: "bot", file: [zip, "bot.zip"] });
    expect(first.status).toBe(201);
    expect(await first.json()).toMatchObject({ object: "adapter", name: "bot", version: 1, public: false, rank: 4, target_modules: ["q_proj", "v_proj"] });
    const tgz = await tarGzOf([{ name: "adapter_config.json", data: good.config }, { name: "adapter_model.safetensors", data: good.model }]);
    const second = await upload("t_acme", { name: "bot", file: [tgz, "bot.tar.gz"] });
    expect(await second.json()).toMatchObject({ version: 2 });
    const third = await upload("t_acme", { name: "bot", adapter_config: [good.config, "adapter_config.json"], adapter_model: [good.model, "adapter_model.safetensors"] });
    expect(await third.json()).toMatchObject({ version: 3 });
    const list = (await (await get("/v1/adapters", "t_acme")).json()) as { data: Array<{ version: number }> };
    expect(list.data.map((a) => a.version)).toEqual([3, 2, 1]);
  });

  it("accepts the archive itself as the body, with the name in the query", async () => {
    const zip = zipOf({ "adapter_config.json": good.config, "adapter_model.safetensors": good.model });
    const post = (body: Uint8Array, type: string, query = "?name=raw") =>
      app.request(`/v1/adapters${query}`, { method: "POST", body: new Uint8Array(body), headers: { "x-tenant": "t_acme", "content-type": type } });
    const res = await post(zip, "application/zip");
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ name: "raw", version: 1 });
    const tgz = await tarGzOf([{ name: "adapter_config.json", data: good.config }, { name: "adapter_model.safetensors", data: good.model }]);
    expect(await (await post(tgz, "application/gzip")).json()).toMatchObject({ name: "raw", version: 2 });
    expect((await post(zip, "application/zip", "")).status).toBe(400);
    expect((await post(zip, "text/plain")).status).toBe(415);
  });

  it("refuses bad uploads with the reason and leaves nothing behind", async () => {
    const cases: Array<[Record<string, string | [Uint8Array, string]>, number, RegExp]> = [
      [{ name: "x", file: [zipOf({ "../adapter_config.json": good.config, "adapter_model.safetensors": good.model }), "a.zip"] }, 400, /path traversal/],
      [{ name: "x", adapter_config: [good.config, "adapter_config.json"], adapter_model: [utf8("pickle"), "adapter_model.bin"] }, 400, /pickle/],
      [{ name: "x", adapter_config: [good.config, "c.json"], adapter_model: [good.model.subarray(0, 64), "m.safetensors"] }, 400, /corrupt safetensors header/],
      [{ name: "x", file: [randomPeftAdapter(STORIES, { rank: 32 }).files.model, "m.safetensors"] }, 400, /not a \.zip/],
      [{ name: "x", file: [zipOf({ "adapter_config.json": good.config, "adapter_model.safetensors": new Uint8Array(2 * MAX_UPLOAD) }), "big.zip"] }, 413, /limit/],
      [{ name: "x", file: [new Uint8Array(MAX_UPLOAD + 1), "big.zip"] }, 413, /limit/],
      [{ name: "x", adapter_config: [randomPeftAdapter(STORIES, { rank: 32 }).files.config, "c.json"], adapter_model: [randomPeftAdapter(STORIES, { rank: 32 }).files.model, "m.safetensors"] }, 400, /rank 32, above/],
      [{ file: [zipOf({ "adapter_config.json": good.config, "adapter_model.safetensors": good.model }), "a.zip"] }, 400, /'name'/],
    ];
    for (const [fields, status, message] of cases) {
      const res = await upload("t_acme", fields);
      const body = (await res.json()) as { error: { message: string; code: string } };
      expect(res.status, body.error.message).toBe(status);
      expect(body.error.message).toMatch(message);
    }
    nothingLeft();
  });

  it("hides another tenant's private adapter behind 404s", async () => {
    const created = (await (await upload("t_acme", { name: "secret", adapter_config: [good.config, "c.json"], adapter_model: [good.model, "m.safetensors"] })).json()) as { id: string };
    expect((await get(`/v1/adapters/${created.id}`, "t_acme")).status).toBe(200);
    expect((await get(`/v1/adapters/${created.id}`, "t_globex")).status).toBe(404);
    expect((await app.request(`/v1/adapters/${created.id}`, { method: "DELETE", headers: { "x-tenant": "t_globex" } })).status).toBe(404);
    expect((await app.request(`/v1/adapters/${created.id}/default`, { method: "POST", headers: { "x-tenant": "t_globex" } })).status).toBe(404);
    expect((await get("/v1/models/secret", "t_globex")).status).toBe(404);
    expect((await get(`/v1/models/stories260k:${created.id}`, "t_globex")).status).toBe(404);
    const globexModels = (await (await get("/v1/models", "t_globex")).json()) as { data: Array<{ id: string }> };
    expect(globexModels.data.map((m) => m.id)).toEqual(["stories260k"]);
  });

  it("only admins upload public adapters, which every tenant sees and may not delete", async () => {
    const denied = await upload("t_acme", { name: "shared", public: "true", file: [zipOf({ "adapter_config.json": good.config, "adapter_model.safetensors": good.model }), "a.zip"] });
    expect(denied.status).toBe(403);
    const res = await upload("", { name: "shared", public: "true", file: [zipOf({ "adapter_config.json": good.config, "adapter_model.safetensors": good.model }), "a.zip"] }, { "x-role": "admin" });
    const shared = (await res.json()) as { id: string; public: boolean };
    expect(shared.public).toBe(true);
    expect((await get(`/v1/adapters/${shared.id}`, "t_globex")).status).toBe(200);
    expect((await app.request(`/v1/adapters/${shared.id}`, { method: "DELETE", headers: { "x-tenant": "t_globex" } })).status).toBe(403);
  });

  it("lists models OpenAI-style, resolves the model field and the tenant default", async () => {
    const bot1 = (await (await upload("t_acme", { name: "bot", adapter_config: [good.config, "c.json"], adapter_model: [good.model, "m.safetensors"] })).json()) as { id: string };
    const bot2 = (await (await upload("t_acme", { name: "bot", adapter_config: [good.config, "c.json"], adapter_model: [good.model, "m.safetensors"] })).json()) as { id: string };
    const models = (await (await get("/v1/models", "t_acme")).json()) as { object: string; data: Array<Record<string, unknown>> };
    expect(models.object).toBe("list");
    expect(models.data).toHaveLength(2);
    expect(models.data[0]).toMatchObject({ id: "stories260k", object: "model", owned_by: "switchyard" });
    expect(models.data[1]).toMatchObject({ id: "bot", object: "model", parent: "stories260k", owned_by: "t_acme", adapter_id: bot2.id, version: 2 });
    expect(await (await get("/v1/models/stories260k:bot@1", "t_acme")).json()).toMatchObject({ adapter_id: bot1.id, parent: "stories260k" });

    const acme = () => store.db.select().from(tenants).where(eq(tenants.id, "t_acme")).get()!;
    expect(await resolveModelField("stories260k", acme(), service.catalog)).toEqual({ base: "stories260k" });
    expect(await resolveModelField("bot", acme(), service.catalog)).toEqual({ base: "stories260k", adapterId: bot2.id, adapterName: "bot@2" });
    expect(await resolveModelField("stories260k:bot@1", acme(), service.catalog)).toEqual({ base: "stories260k", adapterId: bot1.id, adapterName: "bot@1" });
    expect(await resolveModelField(bot1.id, acme(), service.catalog)).toEqual({ base: "stories260k", adapterId: bot1.id, adapterName: "bot@1" });
    await expect(resolveModelField("gpt-4", acme(), service.catalog)).rejects.toThrow(expect.objectContaining({ status: 404, code: "model_not_found" }));
    await expect(resolveModelField("other-base:bot", acme(), service.catalog)).rejects.toThrow(expect.objectContaining({ code: "model_not_found" }));

    const setDefault = await app.request(`/v1/adapters/${bot1.id}/default`, { method: "POST", headers: { "x-tenant": "t_acme" } });
    expect(setDefault.status).toBe(200);
    expect(await resolveModelField(undefined, acme(), service.catalog)).toEqual({ base: "stories260k", adapterId: bot1.id, adapterName: "bot@1" });
    expect(await resolveModelField("stories260k", acme(), service.catalog)).toEqual({ base: "stories260k", adapterId: bot1.id, adapterName: "bot@1" });

    const deleted = await app.request(`/v1/adapters/${bot1.id}`, { method: "DELETE", headers: { "x-tenant": "t_acme" } });
    expect(await deleted.json()).toEqual({ id: bot1.id, object: "adapter.deleted", deleted: true });
    expect(await resolveModelField(undefined, acme(), service.catalog)).toEqual({ base: "stories260k" });
    await expect(resolveModelField("bot@1", acme(), service.catalog)).rejects.toThrow(expect.objectContaining({ code: "model_not_found" }));
  });
});
