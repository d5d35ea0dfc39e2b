import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { newId } from "./ids.ts";
import { apiKeys, type ApiKey } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";
import type { ApiKeys } from "../../ports/tenants.ts";

/**
 * API keys look like `sy_<keyid>_<secret>`. Only the SHA-256 of the whole key is stored; a presented
 * key is found by its id and its hash compared in constant time, so neither lookups nor comparisons
 * leak the secret through timing.
 */
const KEY_PATTERN = /^sy_([a-z0-9]+_[a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface IssuedKey {
  key: string;
  row: ApiKey;
}

// node:crypto (Workers provide it under nodejs_compat): synchronous hashing, because Web Crypto's
// digest queues on libuv's thread pool behind onnxruntime's runs and added milliseconds per request.
export const sha256Hex = (text: string): string => createHash("sha256").update(text).digest("hex");

export const constantTimeEqual = (a: string, b: string): boolean =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const randomSecret = (): string => randomBytes(32).toString("base64url");

export class ApiKeyStore implements ApiKeys {
  /** Prepared once: every authenticated request looks its key up by id. */
  private readonly byId;

  constructor(private readonly db: StoreDb) {
    this.byId = db.select().from(apiKeys).where(eq(apiKeys.id, sql.placeholder("id"))).prepare();
  }

  /** Creates a key; the plain key is returned here once and never stored. */
  async issue(role: ApiKey["role"], tenantId: string | null, name = ""): Promise<IssuedKey> {
    const id = newId(role === "admin" ? "adm" : "key");
    return this.insert(`sy_${id}_${randomSecret()}`, id, role, tenantId, name);
  }

  /** Stores a key chosen by the operator (the configured admin key), if it is not stored yet. */
  async ensure(key: string, role: ApiKey["role"], name: string): Promise<ApiKey> {
    const hash = sha256Hex(key);
    const existing = await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hash)).get();
    if (existing) return existing;
    return (await this.insert(key, newId("cfg"), role, null, name)).row;
  }

  async hasActiveAdminKey(): Promise<boolean> {
    const row = await this.db
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(eq(apiKeys.role, "admin"), isNull(apiKeys.revokedAt)))
      .get();
    return row !== undefined;
  }

  /** The active key row matching `presented`, or undefined. */
  async verify(presented: string): Promise<ApiKey | undefined> {
    const hash = sha256Hex(presented);
    const id = KEY_PATTERN.exec(presented)?.[1];
    const row = id
      ? await this.byId.get({ id })
      : await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hash)).get(); // operator-chosen keys
    if (!row || row.revokedAt !== null || !constantTimeEqual(row.hash, hash)) return undefined;
    return row;
  }

  async listForTenant(tenantId: string): Promise<ApiKey[]> {
    return this.db.select().from(apiKeys).where(eq(apiKeys.tenantId, tenantId)).orderBy(desc(apiKeys.createdAt)).all();
  }

  async get(id: string): Promise<ApiKey | undefined> {
    return this.byId.get({ id });
  }

  async revoke(id: string): Promise<ApiKey | undefined> {
    const [row] = await this.db.update(apiKeys).set({ revokedAt: Date.now() }).where(eq(apiKeys.id, id)).returning();
    return row;
  }

  private async insert(key: string, id: string, role: ApiKey["role"], tenantId: string | null, name: string): Promise<IssuedKey> {
    const values = { id, tenantId, name, role, prefix: key.slice(0, 12), hash: sha256Hex(key) };
    const [row] = await this.db.insert(apiKeys).values(values).returning();
    return { key, row };
  }
}
