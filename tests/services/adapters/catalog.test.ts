import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PlaneError } from "../../../ports/errors.ts";
import { AdapterError } from "../../../services/adapters/errors.ts";
import { createAdapterService, LocalAdapterBlobs, type AdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { adapters, tenants } from "../../../services/store/schema.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { refusal, STORIES, utf8 } from "../../helpers/adapters.ts";

let dataDir: string;
let store: OpenDatabase;
let service: AdapterService;

const good = randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj", "v_proj"] }).files;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "adapters-catalog-"));
  store = openDatabase(join(dataDir, "switchyard.db"));
  store.db.insert(tenants).values([{ id: "t_acme", name: "Acme" }, { id: "t_globex", name: "Globex" }]).run();
  service = await createAdapterService({ db: store.db, dataDir, base: { id: "stories260k", shape: STORIES }, limits: { maxRank: 16 }, cacheBudgetBytes: 16 << 20 });
});

afterEach(() => {
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const rowCount = () => store.db.select().from(adapters).all().length;
const adapterDirs = () => readdirSync(join(dataDir, "adapters"));
const upload = (tenantId: string | null, name: string, files = good) => service.catalog.upload({ tenantId, name, source: files });
const modelRefusal = async (promise: Promise<unknown>) => {
  const e = await promise.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(PlaneError);
  return e as PlaneError;
};

describe("adapter catalog", () => {
  it("stores the validated files under the data directory with their checksum", async () => {
    const row = await upload("t_acme", "support-bot");
    expect(row).toMatchObject({ tenantId: "t_acme", name: "support-bot", version: 1, rank: 4, alpha: 8, baseModel: "stories260k", status: "ready" });
    expect(row.targetModules).toEqual(["q_proj", "v_proj"]);
    expect(row.root).toBe(join("adapters", row.id));
    const stored = await readFile(join(dataDir, row.root, "adapter_model.safetensors"));
    expect(createHash("sha256").update(stored).digest("hex")).toBe(row.sha256);
    expect(row.sha256).toBe(createHash("sha256").update(good.model).digest("hex"));
    expect(adapterDirs()).toEqual([row.id]);
  });

  it("re-uploading a name creates the next version; versions are per owner", async () => {
    const v1 = await upload("t_acme", "bot");
    const v2 = await upload("t_acme", "bot");
    const other = await upload("t_globex", "bot");
    const pub1 = await upload(null, "bot");
    const pub2 = await upload(null, "bot");
    expect([v1.version, v2.version, other.version, pub1.version, pub2.version]).toEqual([1, 2, 1, 1, 2]);
    const { catalog } = service;
    expect((await catalog.resolve("bot", "t_acme")).adapter!.id).toBe(v2.id);
    expect((await catalog.resolve("bot@1", "t_acme")).adapter!.id).toBe(v1.id);
    expect((await modelRefusal(catalog.resolve("bot@3", "t_acme"))).code).toBe("model_not_found");
  });

  it("keeps tenants apart: another tenant's private adapter is not found", async () => {
    const acme = await upload("t_acme", "secret");
    const shared = await upload(null, "shared");
    const globex = { tenantId: "t_globex" };
    const { catalog } = service;
    expect((await catalog.list(globex)).map((a) => a.id)).toEqual([shared.id]);
    expect((await catalog.list({ tenantId: "t_acme" })).map((a) => a.id).sort()).toEqual([acme.id, shared.id].sort());
    expect((await refusal(catalog.get(acme.id, globex))).code).toBe("not_found");
    expect((await modelRefusal(catalog.resolve("secret", "t_globex"))).code).toBe("model_not_found");
    expect((await refusal(catalog.delete(acme.id, globex))).code).toBe("not_found");
    expect(await catalog.resolve(undefined, "t_globex", acme.id)).toEqual({ base: "stories260k" }); // not usable as its default either
    expect((await refusal(catalog.delete(shared.id, globex))).code).toBe("forbidden");
    expect(await catalog.list({ admin: true })).toHaveLength(2);
  });

  it("a refused upload leaves no file and no row", async () => {
    const bad = [
      randomPeftAdapter(STORIES, { rank: 32 }).files,
      randomPeftAdapter({ ...STORIES, hiddenSize: 32 }, { targets: ["q_proj"] }).files,
      { config: good.config, model: good.model.subarray(0, 200) },
      { config: utf8(JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"], use_dora: true })), model: good.model },
    ];
    for (const files of bad) await expect(upload("t_acme", "bad", files)).rejects.toBeInstanceOf(AdapterError);
    await expect(upload("t_acme", "../escape")).rejects.toThrow(/name/);
    expect(rowCount()).toBe(0);
    expect(adapterDirs()).toEqual([]);
  });

  it("a failed row insert removes the files it had written", async () => {
    const ghostTenant = upload("t_missing", "x"); // foreign key fails
    await expect(ghostTenant).rejects.toThrow(/FOREIGN KEY/);
    expect(rowCount()).toBe(0);
    expect(adapterDirs()).toEqual([]);
  });

  it("delete waits for in-flight leases before removing files", async () => {
    const row = await upload("t_acme", "bot");
    const dir = service.blobs.dirOf(row.id);
    const lease = await service.leases.acquire(row.id);
    await service.catalog.delete(row.id, { tenantId: "t_acme" });
    expect(await service.catalog.list({ tenantId: "t_acme" })).toEqual([]);
    await expect(service.leases.acquire(row.id)).rejects.toThrow(/not found/);
    expect(existsSync(dir)).toBe(true);
    expect((await service.blobs.read(row.id)).model.byteLength).toBe(good.model.byteLength); // the running request still reads
    lease.release();
    lease.release(); // idempotent
    await service.leases.settled();
    expect(existsSync(dir)).toBe(false);
    expect(service.cache.has(row.id)).toBe(false);
    expect(service.leases.held(row.id)).toBe(0);
    expect(store.db.select().from(adapters).all()[0]!.status).toBe("deleted");
  });

  it("a default adapter is passed in: used while usable; the edge sets it and clears it on delete", async () => {
    const row = await upload("t_acme", "bot");
    const tenantStore = new TenantStore(store.db);
    await tenantStore.patchSettings("t_acme", { defaultAdapter: row.id });
    const tenant = () => store.db.select().from(tenants).where(eq(tenants.id, "t_acme")).get()!;
    expect(tenant().settings).toEqual({ defaultAdapter: row.id });
    expect((await service.catalog.resolve(undefined, "t_acme", row.id)).adapter!.id).toBe(row.id);
    expect((await service.catalog.resolve("stories260k", "t_acme", row.id)).adapter!.id).toBe(row.id);
    await service.catalog.delete(row.id, { tenantId: "t_acme" });
    expect(tenant().settings).toEqual({ defaultAdapter: row.id }); // the catalog never writes tenants
    await tenantStore.clearDefaultAdapter(row.id);
    expect(tenant().settings).toEqual({});
    expect(await service.catalog.resolve(undefined, "t_acme", row.id)).toEqual({ base: "stories260k" }); // a stale default is ignored
  });

  it("recovery removes temporary and orphaned folders", async () => {
    const row = await upload("t_acme", "bot");
    mkdirSync(join(dataDir, "adapters", ".tmp-ad_crashed"));
    mkdirSync(join(dataDir, "adapters", "ad_orphan"));
    await LocalAdapterBlobs.open(join(dataDir, "adapters"));
    await service.catalog.recover();
    expect(adapterDirs()).toEqual([row.id]);
  });
});
