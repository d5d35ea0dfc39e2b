/** The Feedback and Monitors ports' contract against FeedbackStore and MonitorStore on a fresh SQLite database. */
import { afterEach } from "vitest";
import { openDatabase, type OpenDatabase } from "../../services/store/db.ts";
import { FeedbackStore } from "../../services/store/feedback.ts";
import { MonitorStore } from "../../services/store/monitors.ts";
import { TenantStore } from "../../services/store/tenants.ts";
import { monitoringContract } from "./monitoring.contract.ts";

let store: OpenDatabase | undefined;
afterEach(() => store?.close());

monitoringContract("SQLite", async () => {
  store = openDatabase(":memory:");
  const tenants = new TenantStore(store.db);
  const [a, b] = [await tenants.create("a"), await tenants.create("b")];
  return { feedback: new FeedbackStore(store.db), monitors: new MonitorStore(store.db), tenants: [a.id, b.id] };
});
