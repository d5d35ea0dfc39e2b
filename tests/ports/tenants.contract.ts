/** The Tenants and ApiKeys ports' contract: the edge's own state, whatever stores it. */
import { beforeEach, describe, expect, it } from "vitest";
import type { ApiKeys, Tenants } from "../../ports/tenants.ts";

export interface TenantsFixture {
  tenants: Tenants;
  keys: ApiKeys;
}

export function tenantsContract(name: string, open: () => Promise<TenantsFixture>): void {
  describe(`Tenants port: ${name}`, () => {
    let tenants: Tenants;
    beforeEach(async () => {
      ({ tenants } = await open());
    });

    it("creates, gets and lists tenants", async () => {
      const acme = await tenants.create("acme", { systemPrompt: "Be brief." }, { maxDocuments: 5 });
      const globex = await tenants.create("globex");
      expect(acme).toMatchObject({ name: "acme", disabled: false, settings: { systemPrompt: "Be brief." }, limits: { maxDocuments: 5 } });
      expect(globex).toMatchObject({ name: "globex", settings: {}, limits: {} });
      expect(acme.id).not.toBe(globex.id);
      expect(typeof acme.createdAt).toBe("number");
      expect(await tenants.get(acme.id)).toEqual(acme);
      expect(await tenants.get("ten_missing")).toBeUndefined();
      expect((await tenants.list()).map((t) => t.id).sort()).toEqual([acme.id, globex.id].sort());
    });

    it("updates the given fields only; an unknown tenant gives undefined", async () => {
      const acme = await tenants.create("acme", { systemPrompt: "Hi" }, { maxDocuments: 5 });
      const disabled = await tenants.update(acme.id, { disabled: true, limits: { maxDocumentBytes: 10 } });
      expect(disabled).toMatchObject({ id: acme.id, name: "acme", disabled: true, settings: { systemPrompt: "Hi" }, limits: { maxDocumentBytes: 10 } });
      expect(await tenants.get(acme.id)).toEqual(disabled);
      expect(await tenants.update(acme.id, {})).toEqual(disabled);
      expect(await tenants.update("ten_missing", { name: "x" })).toBeUndefined();
    });

    it("patchSettings merges: a value sets its key, null removes it, other keys stay", async () => {
      const acme = await tenants.create("acme", { systemPrompt: "Hi", chunkSize: 64, defaultStrategy: "rag" });
      const patched = await tenants.patchSettings(acme.id, { chunkSize: null, chunkOverlap: 8, systemPrompt: "Hello" });
      expect(patched?.settings).toEqual({ systemPrompt: "Hello", chunkOverlap: 8, defaultStrategy: "rag" });
      expect((await tenants.get(acme.id))?.settings).toEqual(patched?.settings);
      expect(await tenants.patchSettings("ten_missing", { chunkSize: 64 })).toBeUndefined();
    });

    it("clearDefaultAdapter removes only that adapter as a default, keeping the other settings", async () => {
      const one = await tenants.create("one", { defaultAdapter: "ad_1", systemPrompt: "Hi" });
      const two = await tenants.create("two", { defaultAdapter: "ad_2" });
      const none = await tenants.create("none", { systemPrompt: "Yo" });
      await tenants.clearDefaultAdapter("ad_1");
      expect((await tenants.get(one.id))?.settings).toEqual({ systemPrompt: "Hi" });
      expect((await tenants.get(two.id))?.settings).toEqual({ defaultAdapter: "ad_2" });
      expect((await tenants.get(none.id))?.settings).toEqual({ systemPrompt: "Yo" });
    });
  });

  describe(`ApiKeys port: ${name}`, () => {
    let tenants: Tenants;
    let keys: ApiKeys;
    let tenantId: string;
    beforeEach(async () => {
      ({ tenants, keys } = await open());
      tenantId = (await tenants.create("acme")).id;
    });

    it("issues a key that verifies to its row, once shown in full", async () => {
      const { key, row } = await keys.issue("tenant", tenantId, "ci");
      expect(row).toMatchObject({ tenantId, name: "ci", role: "tenant", revokedAt: null });
      expect(key.startsWith(row.prefix)).toBe(true);
      expect(row.prefix.length).toBeLessThan(key.length);
      expect(await keys.verify(key)).toMatchObject({ id: row.id, tenantId, role: "tenant" });
      expect(await keys.get(row.id)).toMatchObject({ id: row.id, name: "ci" });
      expect(JSON.stringify(await keys.get(row.id))).not.toContain(key);
    });

    it("issues admin keys without a tenant", async () => {
      const { key, row } = await keys.issue("admin", null);
      expect(row).toMatchObject({ tenantId: null, role: "admin" });
      expect((await keys.verify(key))?.role).toBe("admin");
    });

    it("lists a tenant's keys, and only that tenant's", async () => {
      const first = await keys.issue("tenant", tenantId, "first");
      const second = await keys.issue("tenant", tenantId, "second");
      const other = await keys.issue("tenant", (await tenants.create("globex")).id);
      await keys.issue("admin", null);
      expect((await keys.listForTenant(tenantId)).map((k) => k.id).sort()).toEqual([first.row.id, second.row.id].sort());
      expect((await keys.listForTenant(other.row.tenantId!)).map((k) => k.id)).toEqual([other.row.id]);
    });

    it("a revoked key no longer verifies; the others still do", async () => {
      const revoked = await keys.issue("tenant", tenantId);
      const kept = await keys.issue("tenant", tenantId);
      const row = await keys.revoke(revoked.row.id);
      expect(row?.revokedAt).toEqual(expect.any(Number));
      expect(await keys.verify(revoked.key)).toBeUndefined();
      expect((await keys.verify(kept.key))?.id).toBe(kept.row.id);
      expect(await keys.revoke("key_missing")).toBeUndefined();
    });

    it("a malformed or altered key does not verify", async () => {
      const { key } = await keys.issue("tenant", tenantId);
      const last = key.at(-1) === "A" ? "B" : "A";
      for (const presented of ["", "sy_", "not a key", key.slice(0, -1), `${key.slice(0, -1)}${last}`, `${key}x`, key.toUpperCase()]) {
        expect(await keys.verify(presented), presented).toBeUndefined();
      }
    });
  });
}
