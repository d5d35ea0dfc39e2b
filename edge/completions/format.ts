import type { PromptTokenLogprob, TokenLogprob } from "../../ports/index.ts";

/** Shapes of OpenAI's legacy `text_completion` objects (the same for whole responses and stream chunks). */

export const textCompletionId = () => `cmpl-${crypto.randomUUID().replace(/-/g, "")}`;

type Scored = Omit<PromptTokenLogprob, "logprob"> & { logprob: number | null };

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * The legacy logprobs of `entries`. Offsets into the choice's text are counted from `offset` by
 * each token's length, or given one per entry. As in vLLM, each top entry holds the top
 * alternatives and the chosen token; a token without a logprob (the first of an echoed prompt)
 * has null ones.
 */
export function legacyLogprobs(entries: Scored[], offset: number | number[] = 0): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = typeof offset === "number" ? offset : 0;
  entries.forEach((e, i) => {
    out.tokens.push(e.token);
    out.token_logprobs.push(e.logprob);
    out.top_logprobs.push(e.logprob === null ? null : topJson(e.top, { token: e.token, logprob: e.logprob }));
    out.text_offset.push(typeof offset === "number" ? at : offset[i]!);
    at += e.token.length;
  });
  return out;
}

/** Joins logprobs of consecutive pieces of one choice (echoed prompt, then completion). */
export function joinLogprobs(parts: LegacyLogprobs[]): LegacyLogprobs {
  return {
    tokens: parts.flatMap((p) => p.tokens),
    token_logprobs: parts.flatMap((p) => p.token_logprobs),
    top_logprobs: parts.flatMap((p) => p.top_logprobs),
    text_offset: parts.flatMap((p) => p.text_offset),
  };
}

function topJson(top: TokenLogprob[], chosen: Pick<TokenLogprob, "token" | "logprob">): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of top) out[t.token] ??= t.logprob;
  out[chosen.token] ??= chosen.logprob;
  return out;
}

export interface TextChoice {
  index: number;
  text: string;
  logprobs: LegacyLogprobs | null;
  finish_reason: "stop" | "length" | null;
}

/** One `text_completion` object: a whole response, or a stream chunk (`usage` only where given). */
export function textCompletionJson(
  meta: { id: string; created: number; model: string },
  choices: TextChoice[],
  extra: Record<string, unknown> = {},
) {
  return { id: meta.id, object: "text_completion", created: meta.created, model: meta.model, choices, ...extra };
}
