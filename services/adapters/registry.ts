import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { and, desc, eq, isNull, or, sql } from "drizzle-orm";
import type { Db } from "../store/db.ts";
import { adapters, tenants, type Adapter } from "../store/schema.ts";
import type { AdapterFiles } from "./archive.ts";
import { AdapterError } from "./errors.ts";
import { loadPeftAdapter, validatePeftAdapter, type BaseModelShape, type PeftLimits } from "./peft.ts";
import type { LoraWeights } from "./types.ts";

/** Who is asking: a tenant sees its own adapters and public ones; an admin sees all. */
export type Viewer = { tenantId: string } | { admin: true };

export interface AdapterRegistryOptions {
  db: Db;
  dataDir: string;
  /** The node's base model: its id (stored on every row) and dims (every upload is checked against them). */
  base: { id: string; shape: BaseModelShape };
  limits: PeftLimits;
}

export interface CreateAdapterInput {
  /** null for a public adapter. */
  tenantId: string | null;
  name: string;
  files: AdapterFiles;
  /** Where the files came from, when they were read from a path on this machine (vLLM's lora_path). */
  sourcePath?: string;
}

/** A hold on an adapter's files: deleting the adapter waits for every lease to be released. */
export interface AdapterLease {
  adapter: Adapter;
  release(): void;
}

export const CONFIG_FILE = "adapter_config.json";
export const MODEL_FILE = "adapter_model.safetensors";
/** What an adapter name may be. */
export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const notFound = (id: string) => new AdapterError("not_found", `adapter "${id}" not found`);
const isAdmin = (viewer: Viewer): viewer is { admin: true } => "admin" in viewer;

/**
 * Adapters on disk and in the store. Files live under `${dataDir}/adapters/<id>/`; each upload is
 * validated, written to a temporary folder and renamed into place before its row is committed, so
 * a refused or failed upload leaves neither file nor row.
 */
export class AdapterRegistry {
  private readonly db: Db;
  private readonly root: string;
  private readonly leases = new Map<string, number>();
  private readonly removedListeners: Array<(id: string) => void> = [];
  private readonly removals = new Set<Promise<void>>();

  constructor(private readonly options: AdapterRegistryOptions) {
    this.db = options.db;
    this.root = join(options.dataDir, "adapters");
  }

  get baseModelId(): string {
    return this.options.base.id;
  }

  /** Removes temporary folders and the files of deleted adapters left by a crash. Call once at start. */
  async recover(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const ready = new Set(this.db.select({ id: adapters.id }).from(adapters).where(eq(adapters.status, "ready")).all().map((r) => r.id));
    for (const entry of await readdir(this.root)) {
      if (!ready.has(entry)) await rm(join(this.root, entry), { recursive: true, force: true });
    }
  }

  async create(input: CreateAdapterInput): Promise<Adapter> {
    checkName(input.name, this.options.base.id);
    const validated = validatePeftAdapter(input.files, this.options.base.shape, this.options.limits);
    validated.store.close();
    const id = `ad_${randomBytes(12).toString("hex")}`;
    const temp = join(this.root, `.tmp-${id}`);
    const final = this.dirOf(id);
    try {
      await mkdir(temp, { recursive: true });
      await writeFile(join(temp, CONFIG_FILE), input.files.config);
      await writeFile(join(temp, MODEL_FILE), input.files.model);
      await rename(temp, final);
      return this.insertRow(id, input, validated.summary);
    } catch (e) {
      await rm(temp, { recursive: true, force: true });
      await rm(final, { recursive: true, force: true });
      throw e;
    }
  }

  private insertRow(id: string, input: CreateAdapterInput, summary: { rank: number; alpha: number; targetModules: string[] }): Adapter {
    return this.db.transaction((tx) => {
      const owner = input.tenantId === null ? isNull(adapters.tenantId) : eq(adapters.tenantId, input.tenantId);
      const latest = tx
        .select({ version: sql<number>`max(${adapters.version})` })
        .from(adapters)
        .where(and(owner, eq(adapters.name, input.name)))
        .get();
      return tx
        .insert(adapters)
        .values({
          id,
          tenantId: input.tenantId,
          name: input.name,
          version: (latest?.version ?? 0) + 1,
          baseModel: this.options.base.id,
          rank: summary.rank,
          alpha: summary.alpha,
          targetModules: summary.targetModules,
          path: join("adapters", id),
          sourcePath: input.sourcePath ?? null,
          sha256: createHash("sha256").update(input.files.model).digest("hex"),
          sizeBytes: input.files.config.byteLength + input.files.model.byteLength,
        })
        .returning()
        .get();
    });
  }

  /** Every ready adapter the viewer may use, newest first. */
  list(viewer: Viewer): Adapter[] {
    const visible = isAdmin(viewer) ? undefined : or(isNull(adapters.tenantId), eq(adapters.tenantId, viewer.tenantId));
    return this.db
      .select()
      .from(adapters)
      .where(and(eq(adapters.status, "ready"), visible))
      .orderBy(adapters.name, desc(adapters.version))
      .all();
  }

  /** The adapter if it is ready and the viewer may see it; another tenant's private adapter is "not found". */
  get(id: string, viewer: Viewer): Adapter {
    const row = this.db.select().from(adapters).where(eq(adapters.id, id)).get();
    if (!row || row.status !== "ready" || !canSee(row, viewer)) throw notFound(id);
    return row;
  }

  /** By name for a tenant: its own private adapter first, else the public one; newest version unless given. */
  findByName(viewer: Viewer, name: string, version?: number): Adapter | undefined {
    const candidates = this.list(viewer).filter((a) => a.name === name && (version === undefined || a.version === version));
    const own = candidates.filter((a) => a.tenantId !== null);
    return (own.length > 0 ? own : candidates)[0];
  }

  /**
   * Marks the adapter deleted at once (no new request can use it) and removes its files when the
   * last lease is released, so requests already running finish.
   */
  async delete(id: string, viewer: Viewer): Promise<Adapter> {
    const row = this.get(id, viewer);
    if (!isAdmin(viewer) && row.tenantId !== viewer.tenantId) {
      throw new AdapterError("forbidden", `adapter "${id}" is public; only an admin can delete it`);
    }
    this.db.transaction((tx) => {
      tx.update(adapters).set({ status: "deleted" }).where(eq(adapters.id, id)).run();
      tx.update(tenants)
        .set({ settings: sql`json_remove(${tenants.settings}, '$.defaultAdapter')` })
        .where(sql`json_extract(${tenants.settings}, '$.defaultAdapter') = ${id}`)
        .run();
    });
    if (!this.leases.has(id)) await this.removeFiles(id);
    return { ...row, status: "deleted" };
  }

  /** Holds a ready adapter's files for the length of a request. */
  acquire(id: string): AdapterLease {
    const row = this.db.select().from(adapters).where(eq(adapters.id, id)).get();
    if (!row || row.status !== "ready") throw notFound(id);
    this.leases.set(id, (this.leases.get(id) ?? 0) + 1);
    let released = false;
    return {
      adapter: row,
      release: () => {
        if (released) return;
        released = true;
        this.releaseOne(id);
      },
    };
  }

  leaseCount(id: string): number {
    return this.leases.get(id) ?? 0;
  }

  private releaseOne(id: string): void {
    const left = (this.leases.get(id) ?? 1) - 1;
    if (left > 0) {
      this.leases.set(id, left);
      return;
    }
    this.leases.delete(id);
    const row = this.db.select({ status: adapters.status }).from(adapters).where(eq(adapters.id, id)).get();
    if (row?.status === "deleted") {
      const removal = this.removeFiles(id).finally(() => this.removals.delete(removal));
      this.removals.add(removal);
    }
  }

  /** Resolves once the files of every deleted, released adapter are gone (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.removals);
  }

  /** Called with the id once a deleted adapter's files are gone (the cache drops it then). */
  onRemoved(listener: (id: string) => void): void {
    this.removedListeners.push(listener);
  }

  private async removeFiles(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
    for (const listener of this.removedListeners) listener(id);
  }

  /** Sets (or clears, with null) the tenant's default adapter, which must be one the tenant may use. */
  setDefault(tenantId: string, adapterId: string | null): void {
    if (adapterId !== null) this.get(adapterId, { tenantId });
    const path = "$.defaultAdapter";
    const settings = adapterId === null ? sql`json_remove(${tenants.settings}, ${path})` : sql`json_set(${tenants.settings}, ${path}, ${adapterId})`;
    this.db.update(tenants).set({ settings }).where(eq(tenants.id, tenantId)).run();
  }

  /** The tenant's default adapter, if it is set and still usable. */
  defaultFor(tenant: { id: string; settings: Record<string, unknown> }): Adapter | undefined {
    const id = tenant.settings.defaultAdapter;
    if (typeof id !== "string") return undefined;
    try {
      return this.get(id, { tenantId: tenant.id });
    } catch {
      return undefined;
    }
  }

  dirOf(id: string): string {
    return join(this.root, id);
  }

  /** Reads (async) and converts an adapter's stored files into the graph's layout: the cache's loader. */
  async loadWeights(id: string): Promise<LoraWeights> {
    const files = await this.readFiles(id);
    return loadPeftAdapter(id, files, this.options.base.shape, this.options.limits);
  }

  /** Reads an adapter's stored files without blocking the event loop. */
  async readFiles(id: string): Promise<AdapterFiles> {
    const dir = this.dirOf(id);
    try {
      const [config, model] = await Promise.all([readFile(join(dir, CONFIG_FILE)), readFile(join(dir, MODEL_FILE))]);
      return { config: asBytes(config), model: asBytes(model) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw notFound(id);
      throw e;
    }
  }
}

const asBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function canSee(row: Adapter, viewer: Viewer): boolean {
  return isAdmin(viewer) || row.tenantId === null || row.tenantId === viewer.tenantId;
}

function checkName(name: string, baseId: string): void {
  if (!ADAPTER_NAME.test(name)) {
    throw new AdapterError("invalid_config", `adapter name "${name}" is invalid: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  }
  if (name === baseId) throw new AdapterError("invalid_config", `adapter name "${name}" is the base model's id`);
}
