/**
 * Evaluation test sets: JSONL, one `{"messages": [...], "reference": "...", "relevant_documents": [...]?}`
 * per line. `messages` is the conversation to answer (string content; roles system, developer, user,
 * assistant; at least one user message), `reference` the expected answer (not blank), and
 * `relevant_documents` the ids or titles of the knowledge-base documents that answer it. Blank lines are
 * skipped; every bad line is reported with its 1-based number and one reason, and then nothing is stored.
 */
import { z } from "zod";
import type { EvalItem } from "../../ports/evals.ts";

export const MAX_DATASET_ITEMS = 10_000;

const Line = z.object({
  messages: z
    .array(z.object({ role: z.enum(["system", "developer", "user", "assistant"]), content: z.string().max(100_000) }))
    .min(1, "messages must hold at least one message")
    .max(64)
    .refine((m) => m.some((x) => x.role === "user"), "messages must hold a user message"),
  reference: z.string().max(100_000).refine((r) => r.trim() !== "", "reference must not be blank"),
  relevant_documents: z.array(z.string().min(1).max(256)).max(100).optional(),
});

export interface DatasetLineError {
  line: number;
  reason: string;
}

export function parseDataset(text: string): { items: EvalItem[]; errors: DatasetLineError[] } {
  const items: EvalItem[] = [];
  const errors: DatasetLineError[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    if (raw.trim() === "") return;
    const checked = parseLine(raw);
    if ("reason" in checked) errors.push({ line: i + 1, reason: checked.reason });
    else items.push({ line: i + 1, ...checked });
  });
  return { items, errors };
}

function parseLine(raw: string): Omit<EvalItem, "line"> | { reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { reason: "not valid JSON" };
  }
  const parsed = Line.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { reason: issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message };
  }
  const { messages, reference, relevant_documents } = parsed.data;
  return { messages, reference, ...(relevant_documents ? { relevantDocuments: relevant_documents } : {}) };
}
