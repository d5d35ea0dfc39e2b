/** The Tenants and ApiKeys ports' contract against TenantStore and ApiKeyStore on a fresh SQLite database. */
import { afterEach } from "vitest";
import { ApiKeyStore } from "../../services/store/api-keys.ts";
import { openDatabase, type OpenDatabase } from "../../services/store/db.ts";
import { TenantStore } from "../../services/store/tenants.ts";
import { tenantsContract } from "./tenants.contract.ts";

let store: OpenDatabase | undefined;
afterEach(() => store?.close());

tenantsContract("TenantStore and ApiKeyStore on SQLite", async () => {
  store = openDatabase(":memory:");
  return { tenants: new TenantStore(store.db), keys: new ApiKeyStore(store.db) };
});
