import { z } from "zod";

export const STRATEGIES = ["prompt", "rag", "adapter", "rag+adapter"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** What a tenant may set for itself with PATCH /v1/tenant. */
export const TenantSettingsSchema = z
  .object({
    defaultAdapter: z.string().min(1).max(200).nullable(),
    defaultStrategy: z.enum(STRATEGIES),
    systemPrompt: z.string().max(16_000).nullable(),
    /** Few-shot examples prepended by the `prompt` strategy. */
    fewShot: z.array(z.object({ user: z.string().max(8_000), assistant: z.string().max(8_000) })).max(16),
    /** Chunking for new documents, in tokens. */
    chunkSize: z.number().int().min(32).max(4096),
    chunkOverlap: z.number().int().min(0).max(1024),
  })
  .partial()
  .strict();
export type TenantSettings = z.output<typeof TenantSettingsSchema>;

export const DEFAULT_SETTINGS: Required<TenantSettings> = {
  defaultAdapter: null,
  defaultStrategy: "prompt",
  systemPrompt: null,
  fewShot: [],
  chunkSize: 256,
  chunkOverlap: 32,
};

/** What only an admin may set for a tenant. */
export const TenantLimitsSchema = z
  .object({
    requestsPerMinute: z.number().int().min(0),
    tokensPerMinute: z.number().int().min(0),
    maxDocuments: z.number().int().min(0),
    maxDocumentBytes: z.number().int().min(0),
  })
  .partial()
  .strict();
export type TenantLimits = z.output<typeof TenantLimitsSchema>;

/** Stored settings with defaults filled in. Stored JSON is trusted: it was validated on write. */
export function effectiveSettings(stored: Record<string, unknown>): Required<TenantSettings> {
  return { ...DEFAULT_SETTINGS, ...(stored as TenantSettings) };
}
