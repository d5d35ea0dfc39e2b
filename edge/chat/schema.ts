import { z } from "zod";
import { STRATEGIES } from "../tenant-settings.ts";
import { RetrievalOptions } from "./retrieval-options.ts";

/** Message content: a string, or OpenAI's array of parts of which text parts are supported. */
const Content = z.union([
  z.string(),
  z.array(
    z.object({ type: z.literal("text", { error: "only text content parts are supported" }), text: z.string() }),
  ),
]);

const Message = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: Content.nullable(),
  name: z.string().optional(),
});

const Stop = z.union([z.string(), z.array(z.string()).max(4)]).nullable();

/** The sampling fields shared by /v1/chat/completions, /v1/compare and /v1/completions. Unknown fields are ignored. */
export const SamplingFields = z.object({
  model: z.string().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  max_tokens: z.number().int().min(1).nullable().optional(),
  stop: Stop.optional(),
  seed: z.number().int().nullable().optional(),
  n: z.literal(1, { error: "only n=1 is supported" }).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  user: z.string().optional(),
  // Extensions, as vLLM names them.
  top_k: z.number().int().min(-1).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  repetition_penalty: z.number().gt(0).max(10).nullable().optional(),
  /** Switchyard: retrieval settings for the RAG strategies (edge/chat/retrieval-options.ts). */
  retrieval: RetrievalOptions.optional(),
});

/** The sampling and message fields shared by /v1/chat/completions and /v1/compare. */
export const GenerationFields = SamplingFields.extend({
  messages: z.array(Message).min(1, "messages must hold at least one message"),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
});

/** Streaming as OpenAI asks for it. */
export const StreamFields = z.object({
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
});

export const ChatCompletionRequest = GenerationFields.extend({
  ...StreamFields.shape,
  /** Switchyard: how to answer (default: the tenant's default strategy). */
  strategy: z
    .enum(STRATEGIES)
    .optional()
    .describe(
      "Switchyard: how to answer. Default: the tenant's defaultStrategy; a tenant that never set one answers with `adapter` while it has a defaultAdapter, else `prompt`. A `model` naming an adapter adds the adapter (prompt -> adapter, rag -> rag+adapter).",
    ),
}).refine((r) => !r.top_logprobs || r.logprobs, { message: "top_logprobs needs logprobs: true", path: ["top_logprobs"] });

export const CompareRequest = GenerationFields.extend({
  /** Strategies to run side by side (default: every one available to the tenant). */
  strategies: z.array(z.enum(STRATEGIES)).min(1).max(4).optional(),
  /** A reference answer: each result is scored against it. */
  reference: z.string().max(100_000).optional(),
  /** Server-sent events, every strategy's interleaved (edge/routes/compare.ts). */
  stream: z.boolean().nullable().optional(),
});

export type SamplingBody = z.output<typeof SamplingFields>;
export type GenerationBody = z.output<typeof GenerationFields>;
export type ChatCompletionBody = z.output<typeof ChatCompletionRequest>;
export type CompareBody = z.output<typeof CompareRequest>;
