import { fitPrompt, retrieveSources, samplingParams, type CompletionDeps, type PreparedCompletion } from "../chat/completion.ts";
import { formatSource } from "../chat/prompt.ts";
import { usesRetrieval, type Plan } from "../chat/strategy.ts";
import { badRequest } from "../errors.ts";
import { ContextLengthError, type SearchHit } from "../ports.ts";
import { DEFAULT_MAX_TOKENS, type CompletionBody } from "./schema.ts";

/** A prepared raw completion and the text `echo` puts before it. */
export interface PreparedTextCompletion extends PreparedCompletion {
  echo: string;
}

/**
 * Where each prompt token starts in the echoed text: the length of the text its predecessors decode
 * to (special tokens and the tokenizer's leading space take none), at most the echo's length.
 */
export function echoOffsets(deps: CompletionDeps, prepared: PreparedTextCompletion): number[] {
  const { promptTokens, echo } = prepared;
  return promptTokens.map((_, i) => (i === 0 ? 0 : Math.min(deps.inference.detokenize(promptTokens.slice(0, i)).length, echo.length)));
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
  if (typeof prompt !== "string") checkTokenIds(deps, plan, prompt);
  const query = typeof prompt === "string" ? prompt : "";
  const { sources, retrievalMs } = await retrieveSources(deps, tenant.id, plan, query, body.retrieval);
  const requested = body.max_tokens ?? DEFAULT_MAX_TOKENS;
  const render = (used: SearchHit[]) => {
    if (typeof prompt !== "string") return { text: deps.inference.detokenize(prompt), tokens: prompt };
    const text = withContext(prompt, used);
    return { text, tokens: deps.inference.tokenize(text, { addSpecialTokens: true }) };
  };
  let fitted;
  try {
    fitted = fitPrompt(deps.inference, sources, requested, render);
  } catch (err) {
    if (err instanceof ContextLengthError) throw contextLengthExceeded(err);
    throw err;
  }
  const logprobs = body.logprobs ?? undefined;
  return {
    plan,
    ...fitted,
    params: samplingParams(body, fitted.maxTokens, logprobs),
    promptLogprobs: body.echo ? logprobs : undefined,
    retrievalMs,
    echo: fitted.prompt,
  };
}

/** The retrieved chunks, numbered, then the prompt. */
function withContext(prompt: string, sources: SearchHit[]): string {
  if (sources.length === 0) return prompt;
  return `Context:\n${sources.map((h, i) => formatSource(h, i + 1)).join("\n\n")}\n\n${prompt}`;
}

function checkTokenIds(deps: CompletionDeps, plan: Plan, tokens: number[]): void {
  const { vocabSize } = deps.inference.model();
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
