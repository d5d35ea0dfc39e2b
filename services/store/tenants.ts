import { desc, eq, sql } from "drizzle-orm";
import { newId } from "./ids.ts";
import { tenants, type Tenant } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";
import type { Tenants } from "../../ports/tenants.ts";

/** Tenants in SQLite or D1: the tenants port. */
export class TenantStore implements Tenants {
  /** Prepared once: every authenticated request reads its tenant. */
  private readonly byId;

  constructor(private readonly db: StoreDb) {
    this.byId = db.select().from(tenants).where(eq(tenants.id, sql.placeholder("id"))).prepare();
  }

  async create(name: string, settings: Record<string, unknown> = {}, limits: Record<string, unknown> = {}): Promise<Tenant> {
    const [row] = await this.db.insert(tenants).values({ id: newId("ten"), name, settings, limits }).returning();
    return row;
  }

  async get(id: string): Promise<Tenant | undefined> {
    return this.byId.get({ id });
  }

  async list(): Promise<Tenant[]> {
    return this.db.select().from(tenants).orderBy(desc(tenants.createdAt), desc(tenants.id)).all();
  }

  /** Sets the given columns; a patch with nothing to set returns the tenant unchanged. */
  async update(id: string, patch: Partial<Pick<Tenant, "name" | "disabled" | "settings" | "limits">>): Promise<Tenant | undefined> {
    if (Object.values(patch).every((v) => v === undefined)) return this.get(id);
    const [row] = await this.db.update(tenants).set(patch).where(eq(tenants.id, id)).returning();
    return row;
  }

  /**
   * Merges a settings patch into the stored settings in one statement (JSON merge patch: a value
   * sets its key, null removes it), so a concurrent change to another key (an adapter delete
   * clearing `defaultAdapter`) is never overwritten by a copy read earlier.
   */
  async patchSettings(id: string, patch: Record<string, unknown>): Promise<Tenant | undefined> {
    const [row] = await this.db
      .update(tenants)
      .set({ settings: sql`json_patch(${tenants.settings}, ${JSON.stringify(patch)})` })
      .where(eq(tenants.id, id))
      .returning();
    return row;
  }

  async clearDefaultAdapter(adapterId: string): Promise<void> {
    await this.db
      .update(tenants)
      .set({ settings: sql`json_remove(${tenants.settings}, '$.defaultAdapter')` })
      .where(sql`json_extract(${tenants.settings}, '$.defaultAdapter') = ${adapterId}`)
      .run();
  }
}
