/**
 * Runs in a child process (isolated-parse.ts): parses one untrusted document under a decoded-bytes
 * budget, sends the result and exits.
 */
import { decodeLimitMessage, installDecodeBudget } from "./decode-budget.ts";
import { KnowledgeError } from "./errors.ts";
import type { ParseJob, ParseReply } from "./isolated-parse.ts";

process.once("disconnect", () => process.exit(1)); // the server went away: nobody needs the answer
const job = await new Promise<ParseJob>((resolve) => process.once("message", (message) => resolve(message as ParseJob)));
const budget = installDecodeBudget(job.maxDecodedBytes);
const { parseDocument } = await import("./parse.ts");
send({ type: "started" });
send(await run(), () => process.exit(0));

function send(reply: ParseReply, then?: () => void): void {
  process.send!(reply, undefined, {}, then);
}

async function run(): Promise<ParseReply> {
  try {
    const document = await parseDocument(job.format, job.bytes);
    return budget.exceeded() ? refusal(null) : { type: "done", document };
  } catch (err) {
    return refusal(err);
  }
}

function refusal(err: unknown): ParseReply {
  // Checked first: pdf.js may catch the budget's error and rethrow it as a parse error of its own.
  if (budget.exceeded()) return { type: "refused", kind: "too_large", message: decodeLimitMessage(job.maxDecodedBytes) };
  if (err instanceof KnowledgeError) return { type: "refused", kind: err.kind, message: err.message };
  return { type: "refused", kind: "invalid_request", message: `could not parse the document: ${err instanceof Error ? err.message : String(err)}` };
}
