/** The Usage port's contract against UsageStore on a fresh SQLite database. */
import { afterEach } from "vitest";
import { openDatabase, type OpenDatabase } from "../../services/store/db.ts";
import { TenantStore } from "../../services/store/tenants.ts";
import { UsageStore } from "../../services/store/usage.ts";
import { usageContract } from "./usage.contract.ts";

let store: OpenDatabase | undefined;
afterEach(() => store?.close());

usageContract("UsageStore on SQLite", async () => {
  store = openDatabase(":memory:");
  const tenants = new TenantStore(store.db);
  const [a, b] = [await tenants.create("a"), await tenants.create("b")];
  return { usage: new UsageStore(store.db), tenants: [a.id, b.id] };
});
