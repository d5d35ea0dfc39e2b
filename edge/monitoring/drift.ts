/**
 * Input drift: how far recent prompts have moved from the prompts an adapter was trained on.
 *
 *   drift = 1 − cos(c_recent, c_train)
 *
 * where c_recent is the mean of the L2-normalised embeddings of the last N prompts served with the
 * adapter (the last user message of each chat completion) and c_train the same over the user messages
 * of its training file (the last user turn of each example, at most MAX_TRAINING_EXAMPLES, taken in
 * order). 0: the same centre; it grows as the prompts move to other topics. It is cheap (one embedding
 * per prompt, no per-pair distances) and blind to changes that keep the centroid (a narrower spread);
 * compare values for one embedder only (the knowledge base's; its id is reported with the value).
 */
export const MAX_TRAINING_EXAMPLES = 500;
export const DEFAULT_DRIFT_WINDOW = 50;

/** The mean of the L2-normalised vectors (zero vectors skipped); undefined when there are none. */
export function centroid(vectors: readonly Float32Array[]): Float64Array | undefined {
  let sum: Float64Array | undefined;
  let n = 0;
  for (const v of vectors) {
    let norm = 0;
    for (const x of v) norm += x * x;
    if (norm === 0) continue;
    norm = Math.sqrt(norm);
    sum ??= new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) sum[i]! += v[i]! / norm;
    n++;
  }
  return sum && sum.map((x) => x / n);
}

export function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

export function centroidDrift(recent: Float64Array, training: Float64Array): number {
  return Math.max(0, 1 - cosine(recent, training));
}

/** The last user message of each line of a chat fine-tuning JSONL (OpenAI's format), in order. */
export function trainingPrompts(jsonl: string, limit = MAX_TRAINING_EXAMPLES): string[] {
  const out: string[] = [];
  for (const line of jsonl.split("\n")) {
    if (out.length >= limit) break;
    if (line.trim() === "") continue;
    try {
      const parsed = JSON.parse(line) as { messages?: { role?: string; content?: unknown }[] };
      const user = parsed.messages?.findLast((m) => m.role === "user");
      if (typeof user?.content === "string" && user.content.trim() !== "") out.push(user.content);
    } catch {
      // Files are validated at upload; a line that is not JSON here is skipped.
    }
  }
  return out;
}
