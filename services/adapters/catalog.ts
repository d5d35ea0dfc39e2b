/**
 * The adapter catalog port over the store (better-sqlite3 or D1: every query awaited, no sync-only
 * calls, no transactions) and a blob store for the files.
 *
 * Policy: a tenant sees its own adapters and public ones; another tenant's private adapter is
 * not_found, never forbidden. A name means the tenant's own adapter first, else the public one, newest
 * version unless `name@version`. An upload is validated before anything is written; its files are
 * put before its row is inserted, and removed again when the insert fails, so a refused or failed
 * upload leaves neither. The next version is computed inside the insert (one statement). A delete
 * marks the row deleted, then hands the id to `retire` (the leases), which removes the files once no
 * request holds them. The catalog never touches the tenants table: defaults are passed in, and
 * clearing them on delete is the edge's job.
 */
import { createHash, randomBytes } from "node:crypto";
import { and, asc, desc, eq, isNull, or, sql, type SQL } from "drizzle-orm";
import { modelNotFound } from "../../ports/errors.ts";
import { ADAPTER_NAME, type AdapterArchive, type AdapterArchiveFormat, type AdapterCatalog, type AdapterContent, type AdapterInfo, type AdapterUpload, type ResolvedModel, type Viewer } from "../../ports/adapters.ts";
import { adapters, type Adapter } from "../store/schema.ts";
import type { StoreDb } from "../store/store-db.ts";
import { writeAdapterArchive } from "./archive-writer.ts";
import type { AdapterBlobs } from "./blob-store.ts";
import { AdapterError } from "./errors.ts";
import type { BaseModelShape, PeftLimits } from "./peft.ts";
import { readAdapterUpload } from "./upload.ts";

export interface AdapterCatalogOptions {
  db: StoreDb;
  blobs: AdapterBlobs;
  /** The node's base model: its id (stored on every row) and dims (every upload is checked against them). */
  base: { id: string; shape: BaseModelShape };
  limits: PeftLimits;
  /** Largest upload, also the decompressed-size limit. */
  maxUploadBytes: number;
  /** The folder `{ path }` uploads are read from; undefined: loading by path is off. */
  loraDir?: string;
  /** Called once a row is marked deleted (the leases: files go when no request holds them). */
  retire?(id: string): Promise<void>;
}

const isAdmin = (viewer: Viewer): viewer is { admin: true } => "admin" in viewer;
const notFound = (id: string) => new AdapterError("not_found", `adapter "${id}" not found`);

export class StoreAdapterCatalog implements AdapterCatalog {
  private readonly db: StoreDb;

  constructor(private readonly options: AdapterCatalogOptions) {
    this.db = options.db;
  }

  async baseModel(): Promise<string> {
    return this.options.base.id;
  }

  /** Removes stored files that belong to no ready adapter (a crash between put and insert, or during a delete). Call once at start. */
  async recover(): Promise<void> {
    const ready = new Set((await this.db.select({ id: adapters.id }).from(adapters).where(eq(adapters.status, "ready"))).map((r) => r.id));
    for (const id of await this.options.blobs.list()) if (!ready.has(id)) await this.options.blobs.remove(id);
  }

  async list(viewer: Viewer): Promise<AdapterInfo[]> {
    const visible = isAdmin(viewer) ? undefined : or(isNull(adapters.tenantId), eq(adapters.tenantId, viewer.tenantId));
    const rows = await this.db.select().from(adapters).where(and(eq(adapters.status, "ready"), visible)).orderBy(adapters.name, desc(adapters.version));
    return rows.map(toInfo);
  }

  async get(id: string, viewer: Viewer): Promise<AdapterInfo> {
    const row = await this.ready(id, viewer);
    if (!row) throw notFound(id);
    return toInfo(row);
  }

  async content(id: string, viewer: Viewer): Promise<AdapterContent> {
    await this.get(id, viewer);
    return this.options.blobs.read(id);
  }

  async resolve(model: string | undefined, tenantId: string, defaultAdapter?: string | null): Promise<ResolvedModel> {
    const base = this.options.base.id;
    if (model === undefined || model === "" || model === base) {
      const fallback = defaultAdapter ? await this.ready(defaultAdapter, { tenantId }) : undefined;
      return fallback ? { base, adapter: toInfo(fallback) } : { base };
    }
    const ref = model.startsWith(`${base}:`) ? model.slice(base.length + 1) : model;
    const adapter = await this.byRef(ref, tenantId);
    if (!adapter) throw modelNotFound(model);
    return { base, adapter: toInfo(adapter) };
  }

  /** The stored files in the folder `<name>-v<version>/`, packed as `format`. */
  async archive(id: string, viewer: Viewer, format: AdapterArchiveFormat): Promise<AdapterArchive> {
    const adapter = await this.get(id, viewer);
    const files = await this.options.blobs.read(id);
    return { adapter, format, bytes: await writeAdapterArchive(files, `${adapter.name}-v${adapter.version}`, format, adapter.createdAt) };
  }

  async upload(upload: AdapterUpload): Promise<AdapterInfo> {
    checkName(upload.name, this.options.base.id);
    const { files, summary, sourcePath } = await readAdapterUpload(upload.source, {
      maxBytes: this.options.maxUploadBytes,
      loraDir: this.options.loraDir,
      base: this.options.base.shape,
      limits: this.options.limits,
    });
    const id = `ad_${randomBytes(12).toString("hex")}`;
    await this.options.blobs.put(id, files);
    try {
      const [row] = await this.db
        .insert(adapters)
        .values({
          id,
          tenantId: upload.tenantId,
          name: upload.name,
          version: sql`(select coalesce(max(${adapters.version}), 0) + 1 from ${adapters} where ${and(ownedBy(upload.tenantId), eq(adapters.name, upload.name))})`,
          baseModel: this.options.base.id,
          rank: summary.rank,
          alpha: summary.alpha,
          targetModules: summary.targetModules,
          kind: summary.kind,
          numVirtualTokens: summary.numVirtualTokens,
          path: this.options.blobs.locate(id),
          sourcePath: sourcePath ?? null,
          sha256: createHash("sha256").update(files.model).digest("hex"),
          sizeBytes: files.config.byteLength + files.model.byteLength,
        })
        .returning();
      return toInfo(row!);
    } catch (e) {
      await this.options.blobs.remove(id);
      throw e;
    }
  }

  async delete(id: string, viewer: Viewer): Promise<AdapterInfo> {
    const info = await this.get(id, viewer);
    if (!isAdmin(viewer) && info.tenantId !== viewer.tenantId) {
      throw new AdapterError("forbidden", `adapter "${id}" is public; only an admin can delete it`);
    }
    await this.db.update(adapters).set({ status: "deleted" }).where(eq(adapters.id, id));
    await this.options.retire?.(id);
    return { ...info, status: "deleted" };
  }

  /** The row if it is ready and the viewer may see it. */
  private async ready(id: string, viewer: Viewer): Promise<Adapter | undefined> {
    const [row] = await this.db.select().from(adapters).where(eq(adapters.id, id)).limit(1);
    return row && row.status === "ready" && canSee(row, viewer) ? row : undefined;
  }

  /** An `ad_` id (any base), else `name` / `name@version` for the tenant, which must be on this base. */
  private async byRef(ref: string, tenantId: string): Promise<Adapter | undefined> {
    if (ref.startsWith("ad_")) return this.ready(ref, { tenantId });
    const m = /^(.+)@(\d+)$/.exec(ref);
    const found = await this.byName(tenantId, m ? m[1]! : ref, m ? Number(m[2]) : undefined);
    return found?.baseModel === this.options.base.id ? found : undefined;
  }

  /** One query: the tenant's own adapter of that name first, else the public one; newest version unless given. */
  private async byName(tenantId: string, name: string, version?: number): Promise<Adapter | undefined> {
    const [row] = await this.db
      .select()
      .from(adapters)
      .where(
        and(
          eq(adapters.status, "ready"),
          eq(adapters.name, name),
          or(isNull(adapters.tenantId), eq(adapters.tenantId, tenantId)),
          version === undefined ? undefined : eq(adapters.version, version),
        ),
      )
      .orderBy(asc(sql`${adapters.tenantId} is null`), desc(adapters.version))
      .limit(1);
    return row;
  }
}

function ownedBy(tenantId: string | null): SQL {
  return tenantId === null ? isNull(adapters.tenantId) : eq(adapters.tenantId, tenantId);
}

function canSee(row: Adapter, viewer: Viewer): boolean {
  return isAdmin(viewer) || row.tenantId === null || row.tenantId === viewer.tenantId;
}

function checkName(name: string, baseId: string): void {
  if (!ADAPTER_NAME.test(name)) {
    throw new AdapterError("invalid_config", `adapter name "${name}" is invalid: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  }
  if (name === baseId) throw new AdapterError("invalid_config", `adapter name "${name}" is the base model's id`);
}

/** The port's view of a row: `root` is where it was loaded from (lora_path), else its folder in storage. */
export function toInfo(row: Adapter): AdapterInfo {
  return {
    id: row.id,
    tenantId: row.tenantId,
    name: row.name,
    version: row.version,
    baseModel: row.baseModel,
    kind: row.kind,
    rank: row.rank,
    alpha: row.alpha,
    targetModules: row.targetModules,
    numVirtualTokens: row.numVirtualTokens,
    sha256: row.sha256,
    sizeBytes: row.sizeBytes,
    status: row.status,
    root: row.sourcePath ?? row.path,
    createdAt: row.createdAt,
  };
}
