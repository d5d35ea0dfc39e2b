import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { ingestPolicy } from "../../../edge/tenant-settings.ts";
import type { IngestPolicy } from "../../../ports/knowledge.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";
import { createKnowledgeBase, type KnowledgeBase, type KnowledgeBaseOptions } from "../../../services/retrieval/knowledge-base.ts";
import type { Embedder } from "../../../services/retrieval/types.ts";

/**
 * A deterministic bag-of-words embedder (signed feature hashing, L2-normalised) for tests of the
 * index logic only: similar wording gives similar vectors, and it needs no model.
 */
export function hashingEmbedder(dimension = 64): Embedder & { calls: number } {
  return {
    id: `hashing-${dimension}`,
    dimension,
    calls: 0,
    async embed(texts) {
      this.calls++;
      return texts.map((text) => {
        const v = new Float32Array(dimension);
        for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
          const h = fnv1a(word);
          v[h % dimension] += h & 0x80000000 ? -1 : 1;
        }
        const norm = Math.hypot(...v) || 1;
        return v.map((x) => x / norm);
      });
    },
  };
}

/**
 * The hashing embedder behind a gate the test holds: each `embed` call waits at the gate until the
 * test lets it through, so a test can look at ingestion between two batches without racing it.
 */
export interface GatedEmbedder {
  embedder: Embedder;
  /** Resolves once an `embed` call is waiting at the gate. */
  arrived(): Promise<void>;
  /** Lets the waiting call through. */
  release(): void;
  /** Lets every call through from now on. */
  open(): void;
}

export function gatedEmbedder(base = hashingEmbedder()): GatedEmbedder {
  let opened = false;
  const waiting: Array<() => void> = [];
  const watchers: Array<() => void> = [];
  return {
    embedder: {
      id: base.id,
      dimension: base.dimension,
      async embed(texts) {
        if (!opened) {
          await new Promise<void>((resolve) => {
            waiting.push(resolve);
            watchers.splice(0).forEach((notify) => notify());
          });
        }
        return base.embed(texts);
      },
    },
    arrived: () => (waiting.length > 0 ? Promise.resolve() : new Promise<void>((resolve) => watchers.push(resolve))),
    release: () => waiting.shift()?.(),
    open: () => {
      opened = true;
      waiting.splice(0).forEach((resolve) => resolve());
    },
  };
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface TestKb {
  kb: KnowledgeBase;
  store: OpenDatabase;
  dataDir: string;
  reopen(overrides?: Partial<KnowledgeBaseOptions>): Promise<KnowledgeBase>;
  cleanup(): Promise<void>;
}

export function addTenant(store: OpenDatabase, id: string, fields: { limits?: Record<string, unknown>; settings?: Record<string, unknown> } = {}): void {
  store.db.insert(tenants).values({ id, name: id, limits: fields.limits ?? {}, settings: fields.settings ?? {} }).run();
}

/** The policy the edge passes for this tenant's uploads: its stored settings and limits, resolved (edge/tenant-settings.ts). */
export function policyOf(store: OpenDatabase, tenantId: string): IngestPolicy {
  const row = store.db.select().from(tenants).where(eq(tenants.id, tenantId)).get();
  if (!row) throw new Error(`no tenant ${tenantId}`);
  return ingestPolicy(row);
}

/** A knowledge base on a fresh temp data dir with tenants "acme" and "globex". */
export async function openTestKb(overrides: Partial<KnowledgeBaseOptions> = {}): Promise<TestKb> {
  const dataDir = mkdtempSync(join(tmpdir(), "kb-test-"));
  const dbPath = join(dataDir, "switchyard.db");
  let store = openDatabase(dbPath);
  addTenant(store, "acme");
  addTenant(store, "globex");
  const make = (o: Partial<KnowledgeBaseOptions>) =>
    createKnowledgeBase({ db: store.db, sqlite: store.sqlite, dataDir, embedder: hashingEmbedder(), ...overrides, ...o });
  const ctx: TestKb = {
    kb: await make({}),
    get store() {
      return store;
    },
    dataDir,
    async reopen(o = {}) {
      await ctx.kb.close();
      store.close();
      store = openDatabase(dbPath);
      ctx.kb = await make(o);
      return ctx.kb;
    },
    async cleanup() {
      await ctx.kb.close();
      store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return ctx;
}

export const utf8 = (s: string) => new TextEncoder().encode(s);
