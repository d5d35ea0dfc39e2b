/**
 * Validation of a fine-tuning file as a whole: size and line limits, UTF-8, every line's structure
 * (training-data.ts), and every example's length after the chat template against the serving model's
 * context, through the Inference port (one `encode` per example). A preference (DPO) file is known
 * by its shape (preference-data.ts) and checked as one: both answers, each after the prompt, must fit
 * the context. A file with any bad line is refused whole: one invalid_request error listing the first `MAX_REPORTED` bad lines and how many there are.
 */
import { PlaneError } from "../../ports/errors.ts";
import type { Inference } from "../../ports/inference.ts";
import { looksLikePreferenceData, parsePreferenceData, withAnswer } from "./preference-data.ts";
import { parseTrainingData, splitLines, type LineError, type TrainingExample, type TrainingMessage } from "./training-data.ts";

/** What counting tokens needs of the inference plane. */
export type Tokenizer = Pick<Inference, "model" | "encode">;

export interface TrainingFileLimits {
  /** Largest file, in bytes. */
  maxBytes: number;
  /** Most lines (blank ones included). */
  maxLines: number;
}

export interface TrainingFileSummary {
  examples: number;
  tokens: number;
}

/** Bad lines listed in the error message; the count covers them all. */
export const MAX_REPORTED = 50;

export async function validateTrainingFile(bytes: Uint8Array, tokenizer: Tokenizer, limits: TrainingFileLimits): Promise<TrainingFileSummary> {
  if (bytes.byteLength > limits.maxBytes) {
    throw new PlaneError("too_large", `The file is ${bytes.byteLength} bytes, above the limit of ${limits.maxBytes} bytes per file.`, { code: "file_too_large", param: "file" });
  }
  const text = decodeUtf8(bytes);
  const lineCount = splitLines(text).length;
  if (lineCount > limits.maxLines) {
    throw new PlaneError("too_large", `The file has ${lineCount} lines, above the limit of ${limits.maxLines} lines per file.`, { code: "too_many_lines", param: "file" });
  }
  const { examples, errors, count } = parseExamples(text);
  const { tokens, errors: lengthErrors } = await countTokens(examples, tokenizer);
  const all = [...errors, ...firstPerLine(lengthErrors)].sort((a, b) => a.line - b.line);
  if (all.length > 0) throw invalidLines(all);
  if (examples.length === 0) throw new PlaneError("invalid_request", "The training file holds no examples.", { code: "invalid_training_file", param: "file" });
  return { examples: count, tokens };
}

/** One error per line (a preference pair's two answers may both be too long). */
function firstPerLine(errors: LineError[]): LineError[] {
  return errors.filter((e, i) => errors.findIndex((f) => f.line === e.line) === i);
}

/** Chat examples, or for a preference file each pair as two conversations (prompt + preferred, prompt + non-preferred) on its line. */
function parseExamples(text: string): { examples: TrainingExample[]; errors: LineError[]; count: number } {
  if (!looksLikePreferenceData(text)) {
    const parsed = parseTrainingData(text);
    return { ...parsed, count: parsed.examples.length };
  }
  const parsed = parsePreferenceData(text);
  const examples = parsed.examples.flatMap((e) => [e.chosen, e.rejected].map((answer) => ({ line: e.line, messages: withAnswer(e, answer) })));
  return { examples, errors: parsed.errors, count: parsed.examples.length };
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new PlaneError("invalid_request", "The training file is not UTF-8 text (expected JSONL).", { code: "invalid_training_file", param: "file" });
  }
}

/** Each example's tokens after the chat template; one too long for the context is a line error. */
async function countTokens(examples: TrainingExample[], tokenizer: Tokenizer): Promise<{ tokens: number; errors: LineError[] }> {
  const { contextLength } = await tokenizer.model();
  const errors: LineError[] = [];
  let tokens = 0;
  for (const { line, messages } of examples) {
    const encoded = await tokenizer.encode({ candidates: [{ messages: messages.map(chatMessage) }], reserve: 0 });
    const n = encoded.tokens.length;
    if (n > contextLength) errors.push({ line, reason: `${n} tokens after the chat template, longer than the model's context of ${contextLength}` });
    tokens += n;
  }
  return { tokens, errors };
}

const chatMessage = ({ role, content }: TrainingMessage) => ({ role, content });

/** The refusal of a file with bad lines: each listed as `line N: reason`. */
export function invalidLines(errors: LineError[]): PlaneError {
  const shown = errors.slice(0, MAX_REPORTED).map((e) => `line ${e.line}: ${e.reason}`);
  const more = errors.length > MAX_REPORTED ? [`... and ${errors.length - MAX_REPORTED} more`] : [];
  const noun = errors.length === 1 ? "line" : "lines";
  const message = [`The training file has ${errors.length} invalid ${noun}; nothing was stored.`, ...shown, ...more].join("\n");
  return new PlaneError("invalid_request", message, { code: "invalid_training_file", param: "file", details: { invalidLines: errors.length, firstInvalidLine: errors[0]!.line } });
}
