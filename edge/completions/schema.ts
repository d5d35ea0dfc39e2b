import { z } from "zod";
import { STRATEGIES } from "../tenant-settings.ts";
import { SamplingFields, StreamFields } from "../chat/schema.ts";

const TokenIds = z.array(z.number().int().min(0)).min(1, "a prompt of token ids needs at least one token");

/** OpenAI's prompt: a string, several strings, token ids, or several lists of token ids. */
const Prompt = z.union([z.string(), z.array(z.string()).min(1).max(16), TokenIds, z.array(TokenIds).min(1).max(16)], {
  error: "prompt must be a string, an array of (at most 16) strings, an array of token ids, or an array of (at most 16) arrays of token ids",
});

/** OpenAI's legacy /v1/completions request, with vLLM's extras and Switchyard's strategy. */
export const CompletionRequest = SamplingFields.extend({
  ...StreamFields.shape,
  prompt: Prompt,
  /** Legacy logprobs: how many alternatives per token (0: the chosen token's only). */
  logprobs: z.number().int().min(0).max(20).nullable().optional(),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.literal(1, { error: "only best_of=1 is supported" }).nullable().optional(),
  /** Switchyard: how to answer (default: the tenant's default strategy). */
  strategy: z.enum(STRATEGIES).optional(),
}).refine((r) => r.suffix === undefined || r.suffix === null, { message: "suffix is not supported", path: ["suffix"] });

export type CompletionBody = z.output<typeof CompletionRequest>;

/** OpenAI's default `max_tokens` for legacy completions. */
export const DEFAULT_MAX_TOKENS = 16;

/** The request's prompts, one per choice. */
export function promptList(prompt: CompletionBody["prompt"]): Array<string | number[]> {
  if (typeof prompt === "string") return [prompt];
  if (prompt.every((p) => typeof p === "number")) return [prompt as number[]];
  return prompt as Array<string | number[]>;
}
