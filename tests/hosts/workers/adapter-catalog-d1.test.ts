/**
 * The adapter catalog contract on D1 inside workerd: the same catalog class the Node host runs on
 * better-sqlite3 (services/adapters/catalog.ts), over drizzle's D1 driver, with its files in memory
 * (object storage's place on Workers).
 */
import { env } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import type { AdapterFiles } from "../../../services/adapters/archive.ts";
import { AdapterError } from "../../../services/adapters/errors.ts";
import { StoreAdapterCatalog } from "../../../services/adapters/catalog.ts";
import type { AdapterBlobs } from "../../../services/adapters/blob-store.ts";
import * as schema from "../../../services/store/schema.ts";
import { CONTRACT_BASE, CONTRACT_TENANTS, describeAdapterCatalogContract } from "../../ports/adapter-catalog.contract.ts";

const DB = (env as unknown as { DB: D1Database }).DB;

class MemoryBlobs implements AdapterBlobs {
  private readonly files = new Map<string, AdapterFiles>();
  async put(id: string, files: AdapterFiles) {
    this.files.set(id, files);
  }
  async read(id: string) {
    const files = this.files.get(id);
    if (!files) throw new AdapterError("not_found", `adapter "${id}" not found`);
    return files;
  }
  async remove(id: string) {
    this.files.delete(id);
  }
  async list() {
    return [...this.files.keys()];
  }
  locate(id: string) {
    return `memory://${id}`;
  }
}

describeAdapterCatalogContract("StoreAdapterCatalog on D1", async () => {
  const db = drizzle(DB, { schema });
  await db.delete(schema.adapters);
  await db.insert(schema.tenants).values(CONTRACT_TENANTS.map((id) => ({ id, name: id }))).onConflictDoNothing();
  const blobs = new MemoryBlobs();
  const catalog = new StoreAdapterCatalog({ db, blobs, base: CONTRACT_BASE, limits: { maxRank: 16 }, maxUploadBytes: 16 << 20, retire: (id) => blobs.remove(id) });
  return { catalog, close: async () => {} };
});
