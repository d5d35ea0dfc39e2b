/** The edge's own state behind a port: tenants and their API keys (SQLite or D1 underneath). */

export interface Tenant {
  id: string;
  name: string;
  disabled: boolean;
  /** Stored settings (validated on write); the edge resolves them with defaults (edge/tenant-settings.ts). */
  settings: Record<string, unknown>;
  limits: Record<string, unknown>;
  /** Unix ms. */
  createdAt: number;
}

export type KeyRole = "admin" | "tenant";

export interface ApiKey {
  id: string;
  tenantId: string | null;
  name: string;
  role: KeyRole;
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  revokedAt: number | null;
  createdAt: number;
}

export interface Tenants {
  create(name: string, settings?: Record<string, unknown>, limits?: Record<string, unknown>): Promise<Tenant>;
  get(id: string): Promise<Tenant | undefined>;
  list(): Promise<Tenant[]>;
  update(id: string, patch: Partial<Pick<Tenant, "name" | "disabled" | "settings" | "limits">>): Promise<Tenant | undefined>;
  /** JSON merge patch of the settings in one statement: a value sets its key, null removes it. */
  patchSettings(id: string, patch: Record<string, unknown>): Promise<Tenant | undefined>;
  /** Removes `defaultAdapter` from every tenant whose default is this adapter (it was deleted). */
  clearDefaultAdapter(adapterId: string): Promise<void>;
}

export interface ApiKeys {
  /** Creates a key; the plain key is returned here once and never stored. */
  issue(role: KeyRole, tenantId: string | null, name?: string): Promise<{ key: string; row: ApiKey }>;
  /** The active key matching `presented`, or undefined. */
  verify(presented: string): Promise<ApiKey | undefined>;
  get(id: string): Promise<ApiKey | undefined>;
  listForTenant(tenantId: string): Promise<ApiKey[]>;
  revoke(id: string): Promise<ApiKey | undefined>;
}
