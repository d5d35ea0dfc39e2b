/** Runs in a worker thread: parses one untrusted document under a decoded-bytes budget and posts the result. */
import { parentPort, workerData } from "node:worker_threads";
import { decodeLimitMessage, installDecodeBudget } from "./decode-budget.ts";
import { KnowledgeError } from "./errors.ts";
import type { ParseJob, ParseReply } from "./isolated-parse.ts";

const job = workerData as ParseJob;
const budget = installDecodeBudget(job.maxDecodedBytes);
const { parseDocument } = await import("./parse.ts");
parentPort!.postMessage({ type: "started" } satisfies ParseReply);
parentPort!.postMessage(await run());

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
  return { type: "refused", kind: "invalid", message: `could not parse the document: ${err instanceof Error ? err.message : String(err)}` };
}
