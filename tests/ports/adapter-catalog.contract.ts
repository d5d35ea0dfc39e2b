/**
 * The adapter catalog port's contract, for every implementation: the in-process catalog, and the HTTP
 * client of a control node. `make` gives a fresh, empty catalog whose base model is
 * CONTRACT_BASE (stories260k's dims), accepting ranks up to at least 8 and refusing 32, with loading
 * by path off, and where the tenants CONTRACT_TENANTS exist. A catalog shared by the suite (one node
 * process) is "fresh" within a `scope` instead: two tenants no test has used and a prefix for every
 * adapter name, public ones included; the suite then reads lists within that scope (its tenants'
 * adapters and public ones with the prefix), which for a fresh catalog is the whole list.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AdapterCatalog, AdapterInfo, AdapterSource } from "../../ports/adapters.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { refused } from "../helpers/refused.ts";

export const CONTRACT_BASE = { id: "stories260k", shape: { numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 } };
export const CONTRACT_TENANTS = ["t_acme", "t_globex"] as const;

export interface CatalogUnderTest {
  catalog: AdapterCatalog;
  /** For a shared catalog: this test's two tenants (they need not exist yet) and adapter-name prefix. */
  scope?: { tenants: [string, string]; prefix: string };
  close(): Promise<void>;
}

const ADMIN = { admin: true } as const;

const files = (seed = 1, rank = 4) => randomPeftAdapter(CONTRACT_BASE.shape, { rank, targets: ["q_proj", "v_proj"], seed }).files;

export function describeAdapterCatalogContract(name: string, make: () => Promise<CatalogUnderTest>): void {
  describe(`adapter catalog contract: ${name}`, () => {
    let subject: CatalogUnderTest;
    let catalog: AdapterCatalog;
    let acme: string = CONTRACT_TENANTS[0];
    let globex: string = CONTRACT_TENANTS[1];
    let prefix = "";
    let ACME = { tenantId: acme };
    let GLOBEX = { tenantId: globex };
    /** An adapter name in this test's scope. */
    const n = (name: string) => `${prefix}${name}`;
    const upload = (tenantId: string | null, adapterName: string, source: AdapterSource = files()) => catalog.upload({ tenantId, name: n(adapterName), source });
    /** The adapters of a list that are in this test's scope. */
    const scoped = (list: AdapterInfo[]) => list.filter((a) => a.name.startsWith(prefix) && (a.tenantId === null || a.tenantId === acme || a.tenantId === globex));
    const list = async (viewer: Parameters<AdapterCatalog["list"]>[0]) => scoped(await catalog.list(viewer));

    beforeEach(async () => {
      subject = await make();
      catalog = subject.catalog;
      [acme, globex] = subject.scope?.tenants ?? CONTRACT_TENANTS;
      prefix = subject.scope?.prefix ?? "";
      ACME = { tenantId: acme };
      GLOBEX = { tenantId: globex };
    });
    afterEach(async () => {
      await subject.close();
    });

    it("names its base model and starts empty", async () => {
      expect(await catalog.baseModel()).toBe(CONTRACT_BASE.id);
      expect(await list(ADMIN)).toEqual([]);
    });

    it("an upload is validated and described, and read back unchanged", async () => {
      const info = await upload(acme, "bot");
      expect(info).toMatchObject({ tenantId: acme, name: n("bot"), version: 1, baseModel: CONTRACT_BASE.id, rank: 4, alpha: 8, status: "ready" });
      expect(info.id).toMatch(/^ad_/);
      expect(info.targetModules).toEqual(["q_proj", "v_proj"]);
      expect(info.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(info.sizeBytes).toBeGreaterThan(0);
      expect(typeof info.root).toBe("string");
      expect(typeof info.createdAt).toBe("number");
      expect(await catalog.get(info.id, ACME)).toEqual(info);
      expect(await catalog.get(info.id, ADMIN)).toEqual(info);
    });

    it("content gives the stored files back byte for byte, to those who may see the adapter", async () => {
      const source = files(5);
      const mine = await upload(acme, "bot", source);
      const shared = await upload(null, "shared", files(6));
      const content = await catalog.content(mine.id, ACME);
      expect(Buffer.from(content.config).equals(Buffer.from(source.config))).toBe(true);
      expect(Buffer.from(content.model).equals(Buffer.from(source.model))).toBe(true);
      expect((await catalog.content(mine.id, ADMIN)).model.byteLength).toBe(source.model.byteLength);
      expect((await catalog.content(shared.id, GLOBEX)).model.byteLength).toBeGreaterThan(0);
      await refused(catalog.content(mine.id, GLOBEX), "not_found");
      await catalog.delete(mine.id, ACME);
      await refused(catalog.content(mine.id, ACME), "not_found");
    });

    it("accepts an archive of the adapter folder too", async () => {
      const { zipSync } = await import("fflate");
      const { config, model } = files(2);
      const info = await upload(acme, "zipped", { archive: zipSync({ "adapter_config.json": config, "adapter_model.safetensors": model }) });
      expect(info).toMatchObject({ name: n("zipped"), rank: 4 });
    });

    it("archives an adapter as zip and tar.gz, which upload back as the same weights; another tenant's is not_found", async () => {
      const stored = files(4);
      const info = await upload(acme, "packed", stored);
      for (const format of ["zip", "tar.gz"] as const) {
        const archive = await catalog.archive(info.id, ACME, format);
        expect(archive).toMatchObject({ adapter: info, format });
        expect(archive.bytes.byteLength).toBeGreaterThan(0);
        const again = await upload(acme, "unpacked", { archive: archive.bytes });
        expect(again.sha256).toBe(info.sha256);
        expect(again.sizeBytes).toBe(info.sizeBytes);
      }
      await refused(catalog.archive(info.id, GLOBEX, "zip"), "not_found");
      expect((await catalog.archive(info.id, ADMIN, "zip")).adapter.id).toBe(info.id);
    });

    it("refuses a bad upload as invalid_request, with a reason, storing nothing", async () => {
      const { config, model } = files();
      await refused(upload(acme, "bad", files(3, 32)), "invalid_request"); // rank above the limit
      await refused(upload(acme, "bad", { config, model: model.subarray(0, 64) }), "invalid_request");
      await refused(upload(acme, "bad", { config, model, modelFileName: "adapter_model.bin" }), "invalid_request");
      await refused(upload(acme, "bad", { archive: new Uint8Array([1, 2, 3]) }), "invalid_request");
      await refused(upload(acme, "../escape"), "invalid_request");
      await refused(catalog.upload({ tenantId: acme, name: CONTRACT_BASE.id, source: files() }), "invalid_request");
      expect(await list(ADMIN)).toEqual([]);
    });

    it("refuses loading by path when no LoRA folder is configured", async () => {
      const e = await refused(upload(null, "by-path", { path: "anything" }), "forbidden");
      expect(e.code).toBe("lora_dir_not_configured");
      expect(e.param).toBe("lora_path");
    });

    it("versions grow per owner and name; list is by name, newest version first", async () => {
      const v1 = await upload(acme, "bot");
      const v2 = await upload(acme, "bot");
      const other = await upload(globex, "bot");
      const pub = await upload(null, "bot");
      const alpha = await upload(acme, "alpha");
      expect([v1.version, v2.version, other.version, pub.version, alpha.version]).toEqual([1, 2, 1, 1, 1]);
      const listed = await list(ACME);
      expect(listed.map((a) => a.name)).toEqual([n("alpha"), n("bot"), n("bot"), n("bot")]);
      const bots = listed.filter((a) => a.name === n("bot") && a.tenantId === acme);
      expect(bots.map((a) => a.version)).toEqual([2, 1]);
    });

    it("keeps tenants apart: another tenant's adapter is not_found; public ones are seen by all", async () => {
      const secret = await upload(acme, "secret");
      const shared = await upload(null, "shared");
      expect((await list(GLOBEX)).map((a) => a.id)).toEqual([shared.id]);
      expect((await list(ACME)).map((a) => a.id).sort()).toEqual([secret.id, shared.id].sort());
      expect((await list(ADMIN)).map((a) => a.id).sort()).toEqual([secret.id, shared.id].sort());
      await refused(catalog.get(secret.id, GLOBEX), "not_found");
      await refused(catalog.get("ad_missing", ACME), "not_found");
      expect((await catalog.get(shared.id, GLOBEX)).tenantId).toBeNull();
      expect((await refused(catalog.resolve(n("secret"), globex), "not_found")).code).toBe("model_not_found");
      expect((await refused(catalog.resolve(secret.id, globex), "not_found")).code).toBe("model_not_found");
    });

    it("resolves BASE, BASE:ADAPTER, ADAPTER, name@version and ids; the tenant's own name before a public one", async () => {
      const base = CONTRACT_BASE.id;
      const pub = await upload(null, "bot");
      expect((await catalog.resolve(n("bot"), acme)).adapter!.id).toBe(pub.id);
      const own1 = await upload(acme, "bot");
      const own2 = await upload(acme, "bot");
      const id = (r: { adapter?: AdapterInfo }) => r.adapter?.id;
      expect(await catalog.resolve(base, acme)).toEqual({ base });
      expect(await catalog.resolve(undefined, acme)).toEqual({ base });
      expect(id(await catalog.resolve(n("bot"), acme))).toBe(own2.id);
      expect(id(await catalog.resolve(`${base}:${n("bot")}`, acme))).toBe(own2.id);
      expect(id(await catalog.resolve(n("bot@1"), acme))).toBe(own1.id);
      expect(id(await catalog.resolve(`${base}:${n("bot@2")}`, acme))).toBe(own2.id);
      expect(id(await catalog.resolve(own1.id, acme))).toBe(own1.id);
      expect(id(await catalog.resolve(`${base}:${pub.id}`, globex))).toBe(pub.id);
      expect(id(await catalog.resolve(n("bot"), globex))).toBe(pub.id);
      expect((await catalog.resolve(n("bot"), acme)).base).toBe(base);
      for (const unknown of ["gpt-4", n("bot@3"), `other-base:${n("bot")}`, `${base}:`, "ad_missing"]) {
        const e = await refused(catalog.resolve(unknown, acme), "not_found");
        expect(e.code).toBe("model_not_found");
        expect(e.message).toBe(`The model '${unknown}' does not exist or you do not have access to it.`);
      }
    });

    it("BASE or no model means the default adapter passed in, while it is usable", async () => {
      const base = CONTRACT_BASE.id;
      const own = await upload(acme, "bot");
      const secret = await upload(globex, "secret");
      expect((await catalog.resolve(undefined, acme, own.id)).adapter!.id).toBe(own.id);
      expect((await catalog.resolve(base, acme, own.id)).adapter!.id).toBe(own.id);
      expect((await catalog.resolve("", acme, own.id)).adapter!.id).toBe(own.id);
      expect(await catalog.resolve(undefined, acme, null)).toEqual({ base });
      expect(await catalog.resolve(undefined, acme, secret.id)).toEqual({ base }); // not the tenant's to use
      expect(await catalog.resolve(undefined, acme, "ad_missing")).toEqual({ base });
      await catalog.delete(own.id, ACME);
      expect(await catalog.resolve(undefined, acme, own.id)).toEqual({ base }); // deleted: ignored
    });

    it("delete: the owner or an admin; then gone for get, list and resolve", async () => {
      const own = await upload(acme, "bot");
      const shared = await upload(null, "shared");
      await refused(catalog.delete(own.id, GLOBEX), "not_found");
      await refused(catalog.delete(shared.id, ACME), "forbidden");
      const deleted = await catalog.delete(own.id, ACME);
      expect(deleted).toMatchObject({ id: own.id, name: n("bot"), status: "deleted" });
      await refused(catalog.get(own.id, ACME), "not_found");
      await refused(catalog.delete(own.id, ACME), "not_found");
      expect((await list(ACME)).map((a) => a.id)).toEqual([shared.id]);
      await refused(catalog.resolve(n("bot"), acme), "not_found");
      expect((await catalog.delete(shared.id, ADMIN)).status).toBe("deleted");
      expect(await list(ADMIN)).toEqual([]);
      expect((await upload(acme, "bot")).version).toBe(2); // versions are not reused
    });
  });
}
