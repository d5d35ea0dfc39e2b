import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AdapterError } from "../../services/adapters/errors.ts";
import { AdapterRegistry } from "../../services/adapters/registry.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { openDatabase, type OpenDatabase } from "../../services/store/db.ts";
import { adapters, tenants } from "../../services/store/schema.ts";
import { refusal, STORIES, utf8 } from "./helpers.ts";

let dataDir: string;
let store: OpenDatabase;
let registry: AdapterRegistry;

const good = randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj", "v_proj"] }).files;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "adapters-registry-"));
  store = openDatabase(join(dataDir, "switchyard.db"));
  store.db.insert(tenants).values([{ id: "t_acme", name: "Acme" }, { id: "t_globex", name: "Globex" }]).run();
  registry = new AdapterRegistry({ db: store.db, dataDir, base: { id: "stories260k", shape: STORIES }, limits: { maxRank: 16 } });
  await registry.recover();
});

afterEach(() => {
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const rowCount = () => store.db.select().from(adapters).all().length;
const adapterDirs = () => readdirSync(join(dataDir, "adapters"));

describe("adapter registry", () => {
  it("stores the validated files under the data directory with their checksum", async () => {
    const row = await registry.create({ tenantId: "t_acme", name: "support-bot", files: good });
    expect(row).toMatchObject({ tenantId: "t_acme", name: "support-bot", version: 1, rank: 4, alpha: 8, baseModel: "stories260k", status: "ready" });
    expect(row.targetModules).toEqual(["q_proj", "v_proj"]);
    const stored = await readFile(join(dataDir, row.path, "adapter_model.safetensors"));
    expect(createHash("sha256").update(stored).digest("hex")).toBe(row.sha256);
    expect(row.sha256).toBe(createHash("sha256").update(good.model).digest("hex"));
    expect(adapterDirs()).toEqual([row.id]);
  });

  it("re-uploading a name creates the next version; versions are per owner", async () => {
    const v1 = await registry.create({ tenantId: "t_acme", name: "bot", files: good });
    const v2 = await registry.create({ tenantId: "t_acme", name: "bot", files: good });
    const other = await registry.create({ tenantId: "t_globex", name: "bot", files: good });
    const pub1 = await registry.create({ tenantId: null, name: "bot", files: good });
    const pub2 = await registry.create({ tenantId: null, name: "bot", files: good });
    expect([v1.version, v2.version, other.version, pub1.version, pub2.version]).toEqual([1, 2, 1, 1, 2]);
    expect(registry.findByName({ tenantId: "t_acme" }, "bot")!.id).toBe(v2.id);
    expect(registry.findByName({ tenantId: "t_acme" }, "bot", 1)!.id).toBe(v1.id);
    expect(registry.findByName({ tenantId: "t_acme" }, "bot", 3)).toBeUndefined();
  });

  it("keeps tenants apart: another tenant's private adapter is not found", async () => {
    const acme = await registry.create({ tenantId: "t_acme", name: "secret", files: good });
    const shared = await registry.create({ tenantId: null, name: "shared", files: good });
    const globex = { tenantId: "t_globex" };
    expect(registry.list(globex).map((a) => a.id)).toEqual([shared.id]);
    expect(registry.list({ tenantId: "t_acme" }).map((a) => a.id).sort()).toEqual([acme.id, shared.id].sort());
    expect((await refusal(Promise.resolve().then(() => registry.get(acme.id, globex)))).code).toBe("not_found");
    expect(registry.findByName(globex, "secret")).toBeUndefined();
    expect((await refusal(registry.delete(acme.id, globex))).code).toBe("not_found");
    expect(() => registry.setDefault("t_globex", acme.id)).toThrow(/not found/);
    expect((await refusal(registry.delete(shared.id, globex))).code).toBe("forbidden");
    expect(registry.list({ admin: true })).toHaveLength(2);
  });

  it("a refused upload leaves no file and no row", async () => {
    const bad = [
      randomPeftAdapter(STORIES, { rank: 32 }).files,
      randomPeftAdapter({ ...STORIES, hiddenSize: 32 }, { targets: ["q_proj"] }).files,
      { config: good.config, model: good.model.subarray(0, 200) },
      { config: utf8(JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"], use_dora: true })), model: good.model },
    ];
    for (const files of bad) await expect(registry.create({ tenantId: "t_acme", name: "bad", files })).rejects.toBeInstanceOf(AdapterError);
    await expect(registry.create({ tenantId: "t_acme", name: "../escape", files: good })).rejects.toThrow(/name/);
    expect(rowCount()).toBe(0);
    expect(adapterDirs()).toEqual([]);
  });

  it("a failed row insert removes the files it had written", async () => {
    const ghostTenant = registry.create({ tenantId: "t_missing", name: "x", files: good }); // foreign key fails
    await expect(ghostTenant).rejects.toThrow(/FOREIGN KEY/);
    expect(rowCount()).toBe(0);
    expect(adapterDirs()).toEqual([]);
  });

  it("delete waits for in-flight leases before removing files", async () => {
    const row = await registry.create({ tenantId: "t_acme", name: "bot", files: good });
    const removed: string[] = [];
    registry.onRemoved((id) => removed.push(id));
    const lease = registry.acquire(row.id);
    await registry.delete(row.id, { tenantId: "t_acme" });
    expect(registry.list({ tenantId: "t_acme" })).toEqual([]);
    expect(() => registry.acquire(row.id)).toThrow(/not found/);
    expect(existsSync(registry.dirOf(row.id))).toBe(true);
    expect((await registry.readFiles(row.id)).model.byteLength).toBe(good.model.byteLength); // the running request still reads
    lease.release();
    lease.release(); // idempotent
    await registry.settled();
    expect(existsSync(registry.dirOf(row.id))).toBe(false);
    expect(removed).toEqual([row.id]);
    expect(store.db.select().from(adapters).all()[0]!.status).toBe("deleted");
  });

  it("sets and clears the tenant's default adapter, clearing it on delete", async () => {
    const row = await registry.create({ tenantId: "t_acme", name: "bot", files: good });
    registry.setDefault("t_acme", row.id);
    const tenant = () => store.db.select().from(tenants).all().find((t) => t.id === "t_acme")!;
    expect(tenant().settings).toEqual({ defaultAdapter: row.id });
    expect(registry.defaultFor(tenant())!.id).toBe(row.id);
    await registry.delete(row.id, { tenantId: "t_acme" });
    expect(tenant().settings).toEqual({});
    expect(registry.defaultFor(tenant())).toBeUndefined();
  });

  it("recover() removes temporary and orphaned folders", async () => {
    const row = await registry.create({ tenantId: "t_acme", name: "bot", files: good });
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(dataDir, "adapters", ".tmp-ad_crashed"));
    mkdirSync(join(dataDir, "adapters", "ad_orphan"));
    await registry.recover();
    expect(adapterDirs()).toEqual([row.id]);
  });
});
