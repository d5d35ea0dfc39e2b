import { fitPrompt, retrieveSources, samplingParams, type CompletionDeps, type PreparedCompletion } from "../chat/completion.ts";
import { formatSource } from "../chat/prompt.ts";
import { usesRetrieval, type Plan } from "../chat/strategy.ts";
import { badRequest } from "../errors.ts";
import { ContextLengthError, type PromptSource, type SearchHit } from "../../ports/index.ts";
import { DEFAULT_MAX_TOKENS, type CompletionBody } from "./schema.ts";

/** A prepared raw completion, the text `echo` puts before it, and where each prompt token starts in that text. */
export interface PreparedTextCompletion extends PreparedCompletion {
  echo: string;
  echoOffsets: number[];
}

/**
 * One prompt as the model continues it: a string tokenized as the CLI does (with the tokenizer's
 * special tokens, e.g. BOS), or token ids as given. RAG strategies put the retrieved chunks before
 * the text, in plain text.
 */
export async function prepareTextCompletion(
  deps: CompletionDeps,
  tenant: { id: string },
  body: CompletionBody,
  plan: Plan,
  prompt: string | number[],
): Promise<PreparedTextCompletion> {
  if (typeof prompt !== "string") await checkTokenIds(deps, plan, prompt);
  const query = typeof prompt === "string" ? prompt : "";
  const { sources, retrievalMs } = await retrieveSources(deps, tenant.id, plan, query, body.retrieval);
  const requested = body.max_tokens ?? DEFAULT_MAX_TOKENS;
  const render = (used: SearchHit[]): PromptSource => (typeof prompt === "string" ? { text: withContext(prompt, used) } : { tokens: prompt });
  const wantOffsets = !!body.echo && body.logprobs != null;
  let fitted;
  try {
    fitted = await fitPrompt(deps.inference, sources, requested, render, { offsets: wantOffsets, virtualTokens: plan.virtualTokens });
  } catch (err) {
    if (err instanceof ContextLengthError) throw contextLengthExceeded(err);
    throw err;
  }
  const logprobs = body.logprobs ?? undefined;
  const { offsets, ...rest } = fitted;
  return {
    plan,
    ...rest,
    params: samplingParams(body, fitted.maxTokens, logprobs),
    promptLogprobs: body.echo ? logprobs : undefined,
    retrievalMs,
    echo: fitted.prompt,
    echoOffsets: offsets ?? [],
  };
}

/** The retrieved chunks, numbered, then the prompt. */
function withContext(prompt: string, sources: SearchHit[]): string {
  if (sources.length === 0) return prompt;
  return `Context:\n${sources.map((h, i) => formatSource(h, i + 1)).join("\n\n")}\n\n${prompt}`;
}

async function checkTokenIds(deps: CompletionDeps, plan: Plan, tokens: number[]): Promise<void> {
  const { vocabSize } = await deps.inference.model();
  const bad = tokens.find((t) => t >= vocabSize);
  if (bad !== undefined) throw badRequest(`Invalid value for 'prompt': token id ${bad} is not in the vocabulary (0..${vocabSize - 1}).`, "prompt", "invalid_value");
  if (usesRetrieval(plan.strategy)) {
    throw badRequest(`Strategy '${plan.strategy}' retrieves with the prompt's text: give the prompt as a string, not token ids.`, "prompt", "invalid_value");
  }
}

function contextLengthExceeded(err: ContextLengthError) {
  return badRequest(
    `This model's maximum context length is ${err.contextLength} tokens, however you requested ${err.promptTokens + err.maxTokens} tokens ` +
      `(${err.promptTokens} in your prompt; ${err.maxTokens} for the completion). Please reduce your prompt; or completion length.`,
    "prompt",
    "context_length_exceeded",
  );
}
