/**
 * Fine-tuning training data: JSONL, one `{"messages": [...]}` example per line (OpenAI's chat format).
 * Roles are system, user and assistant; an assistant message may carry `weight` 0 or 1 (0: not trained
 * on). Pure functions: each line is checked on its own and every bad line is reported with its
 * (1-based) number and one reason. Blank lines are skipped. Token lengths are checked elsewhere
 * (validate.ts), against the model.
 */
import type { ChatMessage } from "../../ports/inference.ts";

export interface TrainingMessage extends ChatMessage {
  /** Assistant turns only: 0 leaves the turn out of the loss. */
  weight?: 0 | 1;
}

export interface TrainingExample {
  /** 1-based line number in the file. */
  line: number;
  messages: TrainingMessage[];
}

export interface LineError {
  line: number;
  reason: string;
}

export interface ParsedTrainingData {
  examples: TrainingExample[];
  errors: LineError[];
}

const ROLES: ReadonlySet<string> = new Set(["system", "user", "assistant"]);

type Checked<T> = { ok: T } | { error: string };

/** Splits `text` into lines and checks each one. */
export function parseTrainingData(text: string): ParsedTrainingData {
  const examples: TrainingExample[] = [];
  const errors: LineError[] = [];
  splitLines(text).forEach((raw, i) => {
    if (raw.trim() === "") return;
    const checked = parseExampleLine(raw);
    if ("ok" in checked) examples.push({ line: i + 1, messages: checked.ok });
    else errors.push({ line: i + 1, reason: checked.error });
  });
  return { examples, errors };
}

/** The file's lines (LF or CRLF); a final newline ends the last line rather than starting an empty one. */
export function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines.at(-1) === "") lines.pop();
  return lines;
}

/** One line: a JSON object whose `messages` is a valid conversation. */
export function parseExampleLine(raw: string): Checked<TrainingMessage[]> {
  const parsed = parseObjectLine(raw);
  if ("error" in parsed) return parsed;
  const value = parsed.ok;
  if (!Array.isArray(value.messages)) return { error: 'no "messages" array' };
  return checkConversation(value.messages);
}

function checkConversation(raw: unknown[]): Checked<TrainingMessage[]> {
  if (raw.length === 0) return { error: '"messages" is empty' };
  const messages: TrainingMessage[] = [];
  for (const [i, item] of raw.entries()) {
    const checked = checkMessage(item, i + 1);
    if ("error" in checked) return checked;
    messages.push(checked.ok);
  }
  const assistants = messages.filter((m) => m.role === "assistant");
  if (assistants.length === 0) return { error: "no assistant message" };
  if (assistants.every((m) => m.weight === 0)) return { error: "every assistant message has weight 0: nothing to train on" };
  return { ok: messages };
}

/** Message `n` (1-based): a known role, non-empty string content, and a weight of 0 or 1 on assistant turns only. */
export function checkMessage(item: unknown, n: number): Checked<TrainingMessage> {
  if (!isObject(item)) return { error: `message ${n} is not an object` };
  const { role, content, weight } = item;
  if (typeof role !== "string" || !ROLES.has(role)) return { error: `message ${n} has unknown role ${JSON.stringify(role ?? null)} (expected system, user or assistant)` };
  if (typeof content !== "string") return { error: `message ${n} (${role}) has no string content` };
  if (content.trim() === "") return { error: `message ${n} (${role}) has empty content` };
  const message: TrainingMessage = { role: role as ChatMessage["role"], content };
  if (weight === undefined) return { ok: message };
  if (role !== "assistant") return { error: `message ${n} (${role}) has a weight; only assistant messages may` };
  if (weight !== 0 && weight !== 1) return { error: `message ${n} (assistant) has weight ${JSON.stringify(weight)}; weight must be 0 or 1` };
  return { ok: { ...message, weight } };
}

/** One JSONL line that must hold a JSON object. */
export function parseObjectLine(raw: string): Checked<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return { error: `not valid JSON (${(e as Error).message})` };
  }
  return isObject(value) ? { ok: value } : { error: "not a JSON object" };
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
