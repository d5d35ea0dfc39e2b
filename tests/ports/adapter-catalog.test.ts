/** The adapter catalog contract against the in-process catalog on a temporary SQLite file. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdapterService } from "../../services/adapters/index.ts";
import { openDatabase } from "../../services/store/db.ts";
import { tenants } from "../../services/store/schema.ts";
import { CONTRACT_BASE, CONTRACT_TENANTS, describeAdapterCatalogContract } from "./adapter-catalog.contract.ts";

describeAdapterCatalogContract("in-process, SQLite", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "sy-catalog-contract-"));
  const store = openDatabase(join(dataDir, "switchyard.db"));
  await store.db.insert(tenants).values(CONTRACT_TENANTS.map((id) => ({ id, name: id })));
  const { catalog } = await createAdapterService({ db: store.db, dataDir, base: CONTRACT_BASE, limits: { maxRank: 16 }, cacheBudgetBytes: 16 << 20 });
  return {
    catalog,
    async close() {
      store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
