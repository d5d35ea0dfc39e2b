/**
 * GET /v1/adapters/:id/content: the PEFT folder as a .zip or .tar.gz, unpacked here with fflate and
 * tar-stream (not the upload path's reader), uploaded back through POST /v1/adapters, and compared byte
 * for byte; other tenants get 404, a bad format 400.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import { eq } from "drizzle-orm";
import { unzipSync } from "fflate";
import { Hono } from "hono";
import tar from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppEnv } from "../../../edge/env.ts";
import { ApiError } from "../../../edge/errors.ts";
import { adapterRoutes, archiveFormat } from "../../../edge/routes/adapters.ts";
import { createAdapterService, type AdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants, type Tenant } from "../../../services/store/schema.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { STORIES } from "../../helpers/adapters.ts";

let dataDir: string;
let store: OpenDatabase;
let service: AdapterService;
let app: Hono<AppEnv>;

const good = randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj", "v_proj"], seed: 7 }).files;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "adapter-download-"));
  store = openDatabase(join(dataDir, "switchyard.db"));
  store.db.insert(tenants).values([{ id: "t_acme", name: "Acme" }, { id: "t_globex", name: "Globex" }]).run();
  service = await createAdapterService({ db: store.db, dataDir, base: { id: "stories260k", shape: STORIES }, limits: { maxRank: 16 }, cacheBudgetBytes: 16 << 20, maxUploadBytes: 1 << 20 });
  app = new Hono<AppEnv>();
  // X-Tenant picks the tenant, X-Role the role (the auth middleware's place).
  app.use("*", async (c, next) => {
    const tenantId = c.req.header("x-tenant");
    if (tenantId) c.set("tenant", store.db.select().from(tenants).where(eq(tenants.id, tenantId)).get() as Tenant);
    c.set("role", c.req.header("x-role") === "admin" ? "admin" : "tenant");
    await next();
  });
  app.route("/v1/adapters", adapterRoutes({ catalog: service.catalog, tenants: new TenantStore(store.db), maxUploadBytes: 1 << 20 }));
  app.onError((e, c) => (e instanceof ApiError ? c.json(e.toBody(), e.status) : c.json({ error: { message: String(e) } }, 500)));
});

afterEach(() => {
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function uploadPair(tenant: string, name: string): Promise<{ id: string; version: number; sha256: string }> {
  const form = new FormData();
  form.append("name", name);
  form.append("adapter_config", new Blob([new Uint8Array(good.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(good.model)]), "adapter_model.safetensors");
  const res = await app.request("/v1/adapters", { method: "POST", body: form, headers: { "x-tenant": tenant } });
  expect(res.status).toBe(201);
  return res.json() as Promise<{ id: string; version: number; sha256: string }>;
}

const download = (id: string, tenant: string, query = "", headers: Record<string, string> = {}) => app.request(`/v1/adapters/${id}/content${query}`, { headers: { "x-tenant": tenant, ...headers } });

async function untarGz(bytes: Uint8Array): Promise<Record<string, Uint8Array | "dir">> {
  const entries: Record<string, Uint8Array | "dir"> = {};
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
      entries[entry.header.name] = entry.header.type === "directory" ? "dir" : new Uint8Array(Buffer.concat(chunks));
    }
  })();
  Readable.from([gunzipSync(bytes)]).pipe(extract);
  await done;
  return entries;
}

describe("adapter download", () => {
  it("gives the PEFT folder as a zip and as a tar.gz, with its name, type and length", async () => {
    await uploadPair("t_acme", "bot");
    const bot = await uploadPair("t_acme", "bot");
    expect(bot.version).toBe(2);

    const zip = await download(bot.id, "t_acme", "?format=zip");
    expect(zip.status).toBe(200);
    expect(zip.headers.get("content-type")).toBe("application/zip");
    expect(zip.headers.get("content-disposition")).toBe('attachment; filename="bot-v2.zip"');
    const zipBytes = new Uint8Array(await zip.arrayBuffer());
    expect(zip.headers.get("content-length")).toBe(String(zipBytes.byteLength));
    const unzipped = unzipSync(zipBytes);
    expect(Object.keys(unzipped).sort()).toEqual(["bot-v2/adapter_config.json", "bot-v2/adapter_model.safetensors"]);
    expect(Buffer.from(unzipped["bot-v2/adapter_config.json"]!).equals(Buffer.from(good.config))).toBe(true);
    expect(Buffer.from(unzipped["bot-v2/adapter_model.safetensors"]!).equals(Buffer.from(good.model))).toBe(true);

    const tgz = await download(bot.id, "t_acme", "?format=tar.gz");
    expect(tgz.status).toBe(200);
    expect(tgz.headers.get("content-type")).toBe("application/gzip");
    expect(tgz.headers.get("content-disposition")).toBe('attachment; filename="bot-v2.tar.gz"');
    const tgzBytes = new Uint8Array(await tgz.arrayBuffer());
    expect(tgz.headers.get("content-length")).toBe(String(tgzBytes.byteLength));
    const untarred = await untarGz(tgzBytes);
    expect(Object.keys(untarred).sort()).toEqual(["bot-v2/", "bot-v2/adapter_config.json", "bot-v2/adapter_model.safetensors"]);
    expect(Buffer.from(untarred["bot-v2/adapter_model.safetensors"] as Uint8Array).equals(Buffer.from(good.model))).toBe(true);

    // Deterministic: the same adapter downloads as the same bytes.
    expect(Buffer.from(await (await download(bot.id, "t_acme", "?format=zip")).arrayBuffer()).equals(Buffer.from(zipBytes))).toBe(true);
  });

  it("uploads back through the upload path as the same weights, byte for byte", async () => {
    const bot = await uploadPair("t_acme", "bot");
    for (const format of ["zip", "tar.gz"] as const) {
      const archive = new Uint8Array(await (await download(bot.id, "t_acme", `?format=${format}`)).arrayBuffer());
      const res = await app.request(`/v1/adapters?name=again-${format.replace(".", "-")}`, {
        method: "POST",
        body: archive,
        headers: { "x-tenant": "t_acme", "content-type": format === "zip" ? "application/zip" : "application/gzip" },
      });
      expect(res.status).toBe(201);
      const again = (await res.json()) as { id: string; sha256: string };
      expect(again.sha256).toBe(bot.sha256);
      const stored = await service.blobs.read(again.id);
      expect(Buffer.from(stored.model).equals(Buffer.from(good.model))).toBe(true);
      expect(Buffer.from(stored.config).equals(Buffer.from(good.config))).toBe(true);
    }
  });

  it("chooses the format by Accept when no ?format is given, zip by default", async () => {
    const bot = await uploadPair("t_acme", "bot");
    expect((await download(bot.id, "t_acme")).headers.get("content-type")).toBe("application/zip");
    expect((await download(bot.id, "t_acme", "", { accept: "application/gzip" })).headers.get("content-disposition")).toBe('attachment; filename="bot-v1.tar.gz"');
    expect((await download(bot.id, "t_acme", "?format=zip", { accept: "application/gzip" })).headers.get("content-type")).toBe("application/zip");
    expect(archiveFormat(undefined, "text/html, application/x-gzip;q=0.9")).toBe("tar.gz");
    expect(archiveFormat(undefined, "*/*")).toBe("zip");
  });

  it("is 404 for another tenant's private adapter and a deleted one; public adapters download for every tenant", async () => {
    const secret = await uploadPair("t_acme", "secret");
    const res = await download(secret.id, "t_globex");
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { type: "not_found_error", param: "id" } });
    expect((await download("ad_nope", "t_acme")).status).toBe(404);

    const shared = await service.catalog.upload({ tenantId: null, name: "shared", source: good });
    expect((await download(shared.id, "t_globex", "?format=tar.gz")).status).toBe(200);
    expect((await download(secret.id, "", "", { "x-role": "admin" })).status).toBe(200);

    await service.catalog.delete(secret.id, { tenantId: "t_acme" });
    expect((await download(secret.id, "t_acme")).status).toBe(404);
  });

  it("refuses an unknown format with an OpenAI-shaped 400", async () => {
    const bot = await uploadPair("t_acme", "bot");
    const res = await download(bot.id, "t_acme", "?format=rar");
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { message: expect.stringContaining('expected one of zip, tar.gz; got "rar"'), type: "invalid_request_error", param: "format", code: "invalid_value" } });
  });
});
