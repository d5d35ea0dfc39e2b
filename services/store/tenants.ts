import { desc, eq } from "drizzle-orm";
import { newId } from "./ids.ts";
import { tenants, type Tenant } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";

export class TenantStore {
  constructor(private readonly db: StoreDb) {}

  async create(name: string, settings: Record<string, unknown> = {}, limits: Record<string, unknown> = {}): Promise<Tenant> {
    const [row] = await this.db.insert(tenants).values({ id: newId("ten"), name, settings, limits }).returning();
    return row;
  }

  async get(id: string): Promise<Tenant | undefined> {
    return this.db.select().from(tenants).where(eq(tenants.id, id)).get();
  }

  async list(): Promise<Tenant[]> {
    return this.db.select().from(tenants).orderBy(desc(tenants.createdAt), desc(tenants.id)).all();
  }

  async update(id: string, patch: Partial<Pick<Tenant, "name" | "disabled" | "settings" | "limits">>): Promise<Tenant | undefined> {
    const [row] = await this.db.update(tenants).set(patch).where(eq(tenants.id, id)).returning();
    return row;
  }
}
