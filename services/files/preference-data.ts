/**
 * Preference (DPO) training data: JSONL in OpenAI's preference format, one pair per line:
 *   {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content": "..."}],
 *    "non_preferred_output": [{"role": "assistant", "content": "..."}]}
 * The prompt's messages are checked as a fine-tune file's (training-data.ts: roles, non-empty content;
 * `weight` is not allowed) and may not end with an assistant turn; each output is exactly one assistant
 * message with non-empty content, and the two answers differ. Pure functions, every bad line reported
 * with its (1-based) number and one reason, blank lines skipped; token lengths are checked by validate.ts.
 *
 * How a file is known to be one: OpenAI uploads both kinds with `purpose: "fine-tune"`, so the shape
 * decides (`looksLikePreferenceData`): a file whose first non-blank line is a JSON object with an
 * `input`, `preferred_output` or `non_preferred_output` key is validated as preference data, any other
 * as chat examples. A job with `method.type: "dpo"` needs a preference file (trainer/jobs/runner.ts).
 */
import type { ChatMessage } from "../../ports/inference.ts";
import { checkMessage, isObject, parseObjectLine, splitLines, type LineError, type TrainingMessage } from "./training-data.ts";

export interface PreferenceExample {
  /** 1-based line number in the file. */
  line: number;
  /** The prompt: every message before the answer. */
  messages: TrainingMessage[];
  /** The preferred answer's text. */
  chosen: string;
  /** The non-preferred answer's text. */
  rejected: string;
}

export interface ParsedPreferenceData {
  examples: PreferenceExample[];
  errors: LineError[];
}

type Checked<T> = { ok: T } | { error: string };

const KEYS = ["input", "preferred_output", "non_preferred_output"];

/** Whether the file's first non-blank line has the preference shape (see the header). */
export function looksLikePreferenceData(text: string): boolean {
  const first = splitLines(text).find((l) => l.trim() !== "");
  if (first === undefined) return false;
  try {
    const value: unknown = JSON.parse(first);
    return isObject(value) && KEYS.some((k) => k in value);
  } catch {
    return false;
  }
}

/** Splits `text` into lines and checks each one. */
export function parsePreferenceData(text: string): ParsedPreferenceData {
  const examples: PreferenceExample[] = [];
  const errors: LineError[] = [];
  splitLines(text).forEach((raw, i) => {
    if (raw.trim() === "") return;
    const checked = parsePreferenceLine(raw);
    if ("ok" in checked) examples.push({ line: i + 1, ...checked.ok });
    else errors.push({ line: i + 1, reason: checked.error });
  });
  return { examples, errors };
}

export function parsePreferenceLine(raw: string): Checked<Omit<PreferenceExample, "line">> {
  const parsed = parseObjectLine(raw);
  if ("error" in parsed) return parsed;
  const value = parsed.ok;
  if (!isObject(value.input)) return { error: 'no "input" object' };
  if (!Array.isArray(value.input.messages)) return { error: 'no "input.messages" array' };
  const prompt = checkPrompt(value.input.messages);
  if ("error" in prompt) return prompt;
  const chosen = checkOutput(value.preferred_output, "preferred_output");
  if ("error" in chosen) return chosen;
  const rejected = checkOutput(value.non_preferred_output, "non_preferred_output");
  if ("error" in rejected) return rejected;
  if (chosen.ok === rejected.ok) return { error: "preferred_output and non_preferred_output are the same answer" };
  return { ok: { messages: prompt.ok, chosen: chosen.ok, rejected: rejected.ok } };
}

function checkPrompt(raw: unknown[]): Checked<TrainingMessage[]> {
  if (raw.length === 0) return { error: '"input.messages" is empty' };
  const messages: TrainingMessage[] = [];
  for (const [i, item] of raw.entries()) {
    const checked = checkMessage(item, i + 1);
    if ("error" in checked) return { error: `input: ${checked.error}` };
    if (checked.ok.weight !== undefined) return { error: `input: message ${i + 1} has a weight; preference prompts are never trained on` };
    messages.push(checked.ok);
  }
  if (messages.at(-1)!.role === "assistant") return { error: "input: the last message is an assistant turn; the answer belongs in preferred_output / non_preferred_output" };
  return { ok: messages };
}

/** One assistant message with non-empty content; its text. */
function checkOutput(raw: unknown, key: string): Checked<string> {
  if (!Array.isArray(raw)) return { error: `no "${key}" array` };
  if (raw.length !== 1) return { error: `"${key}" must hold exactly one message (it has ${raw.length})` };
  const checked = checkMessage(raw[0], 1);
  if ("error" in checked) return { error: `${key}: ${checked.error}` };
  if (checked.ok.role !== "assistant") return { error: `${key}: the message's role is ${checked.ok.role}, expected assistant` };
  return { ok: checked.ok.content };
}

/** The conversation a row of the pair trains on: the prompt, then `answer` as the assistant's turn. */
export function withAnswer(example: Pick<PreferenceExample, "messages">, answer: string): TrainingMessage[] {
  return [...example.messages, { role: "assistant" satisfies ChatMessage["role"], content: answer }];
}
