import { z } from "zod";
import type { IngestPolicy } from "../ports/knowledge.ts";
import type { Tenant } from "../ports/tenants.ts";

export const STRATEGIES = ["prompt", "rag", "adapter", "rag+adapter"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/**
 * What a tenant may set for itself with PATCH /v1/tenant. Every setting also takes `null`, which
 * resets it to its default (the key is removed from the stored settings).
 */
export const TenantSettingsSchema = z
  .object({
    defaultAdapter: z
      .string()
      .min(1)
      .max(200)
      .nullable()
      .describe("Adapter (name, name@version or id) for requests whose model names none; cleared when that adapter is deleted."),
    defaultStrategy: z
      .enum(STRATEGIES)
      .nullable()
      .describe("Strategy for requests that name none. Unset: `adapter` while a defaultAdapter is set, else `prompt`."),
    systemPrompt: z.string().max(16_000).nullable(),
    /** Few-shot examples prepended by the `prompt` strategy. */
    fewShot: z.array(z.object({ user: z.string().max(8_000), assistant: z.string().max(8_000) })).max(16).nullable(),
    /** Chunking for new documents, in tokens. */
    chunkSize: z.number().int().min(32).max(4096).nullable(),
    chunkOverlap: z.number().int().min(0).max(1024).nullable(),
  })
  .partial()
  .strict();
/** A change to the settings: a value sets one, `null` resets one, a missing key leaves it. */
export type TenantSettingsPatch = z.output<typeof TenantSettingsSchema>;

/** The settings a request runs with: stored values over the defaults. */
export interface TenantSettings {
  defaultAdapter: string | null;
  /** Unless set: `adapter` while a default adapter is set, else `prompt`. */
  defaultStrategy: Strategy;
  systemPrompt: string | null;
  fewShot: Array<{ user: string; assistant: string }>;
  chunkSize: number;
  chunkOverlap: number;
}

export const DEFAULT_SETTINGS: Omit<TenantSettings, "defaultStrategy"> = {
  defaultAdapter: null,
  systemPrompt: null,
  fewShot: [],
  chunkSize: 256,
  chunkOverlap: 32,
};

/**
 * What only an admin may set for a tenant. `null` resets one limit to the platform default; an empty
 * object or `null` for the whole `limits` clears them all (see routes/admin.ts).
 */
export const TenantLimitsSchema = z
  .object({
    requestsPerMinute: z.number().int().min(0).nullable(),
    tokensPerMinute: z.number().int().min(0).nullable(),
    maxDocuments: z.number().int().min(0).nullable(),
    maxDocumentBytes: z.number().int().min(0).nullable(),
  })
  .partial()
  .strict();
export type TenantLimitsPatch = z.output<typeof TenantLimitsSchema>;
export type TenantLimits = { [K in keyof TenantLimitsPatch]?: number };

/** Applies a patch to stored JSON: a value sets its key, `null` removes it, `undefined` leaves it. */
export function applyPatch(stored: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const next: Record<string, unknown> = { ...stored };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete next[key];
    else if (value !== undefined) next[key] = value;
  }
  return next;
}

/** The strategy a request runs with when it names none: the stored one, else `adapter` if it has an adapter. */
export function defaultStrategyOf(stored: Record<string, unknown>, hasAdapter: boolean): Strategy {
  const chosen = stored.defaultStrategy;
  if (typeof chosen === "string" && (STRATEGIES as readonly string[]).includes(chosen)) return chosen as Strategy;
  return hasAdapter ? "adapter" : "prompt";
}

/** Stored settings with defaults filled in. Stored JSON is trusted: it was validated on write (nulls predate resets). */
export function effectiveSettings(stored: Record<string, unknown>): TenantSettings {
  const set = applyPatch({}, stored) as Partial<TenantSettings>;
  return { ...DEFAULT_SETTINGS, ...set, defaultStrategy: defaultStrategyOf(set, typeof set.defaultAdapter === "string") };
}

/** What the knowledge plane obeys when this tenant uploads: its effective chunking and its document limits (undefined: the plane's default). */
export function ingestPolicy(tenant: Pick<Tenant, "settings" | "limits">): IngestPolicy {
  const { chunkSize, chunkOverlap } = effectiveSettings(tenant.settings);
  return { chunkSize, chunkOverlap, maxDocuments: limitOf(tenant.limits, "maxDocuments"), maxDocumentBytes: limitOf(tenant.limits, "maxDocumentBytes") };
}

function limitOf(limits: Record<string, unknown>, key: keyof TenantLimits): number | undefined {
  const value = limits[key];
  return typeof value === "number" ? value : undefined;
}
