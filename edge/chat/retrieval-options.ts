import { z } from "zod";
import { FUSION_METHODS, QUERY_EXPANSIONS } from "../../ports/knowledge.ts";

/** Weights of hybrid fusion; an omitted one takes the plane's default. */
export const FusionWeightsField = z
  .object({ dense: z.number().min(0).max(1000).optional(), bm25: z.number().min(0).max(1000).optional() })
  .strict()
  .refine((w) => w.dense !== 0 || w.bm25 !== 0, { message: "weights.dense and weights.bm25 cannot both be 0" });

/**
 * `retrieval` on chat, compare and completion requests: how many chunks the prompt gets, and how they
 * are found. Omitted fusion and weights take the knowledge plane's defaults (README "Retrieval quality").
 */
export const RetrievalOptions = z.object({
  k: z.number().int().min(1).max(32).default(4),
  mode: z.enum(["dense", "bm25", "hybrid"]).default("hybrid"),
  fusion: z.enum(FUSION_METHODS).optional(),
  weights: FusionWeightsField.optional(),
  /** Keyword-side expansion: "rm3" (pseudo-relevance feedback) or "none" (the default). */
  expansion: z.enum(QUERY_EXPANSIONS).optional(),
  /** At most this many chunks of one document while other documents have relevant chunks. */
  max_chunks_per_document: z.number().int().min(1).max(32).default(2),
});

export type RetrievalOptionsBody = z.output<typeof RetrievalOptions>;

export const DEFAULT_RETRIEVAL: RetrievalOptionsBody = RetrievalOptions.parse({});
