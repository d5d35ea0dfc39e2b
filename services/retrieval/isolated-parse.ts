import { channel } from "node:diagnostics_channel";
import { Worker } from "node:worker_threads";
import { KnowledgeError, type KnowledgeErrorKind } from "./errors.ts";
import { parseDocument, type DocumentFormat, type ParsedDocument } from "./parse.ts";

/** What one parse of an untrusted document may use. */
export interface ParseLimits {
  /** Bytes the parser may allocate for decoded data (PDF streams inflate far past their file size). */
  maxDecodedBytes: number;
  /** Wall-clock limit; the worker is terminated when it is reached. */
  timeoutMs: number;
  /**
   * JS heap of the worker (`resourceLimits.maxOldGenerationSizeMb`). Set well above what a document within
   * the upload and decoded-bytes limits needs: Node terminates a worker that reaches it, but a single large
   * allocation at the limit can abort the whole process instead (nodejs/node#47224).
   */
  maxHeapMb: number;
  /** Parses running at once; more wait, so a burst of hostile uploads cannot multiply the limits above. */
  concurrency: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = { maxDecodedBytes: 256 * 1024 * 1024, timeoutMs: 30_000, maxHeapMb: 1024, concurrency: 2 };

/** Text formats this small parse on the calling thread: linear in their size, and a worker costs more to start. */
const INLINE_TEXT_BYTES = 1024 * 1024;

export interface ParseJob {
  format: DocumentFormat;
  bytes: Uint8Array;
  maxDecodedBytes: number;
}

export type ParseReply =
  | { type: "started" }
  | { type: "done"; document: ParsedDocument }
  | { type: "refused"; kind: KnowledgeErrorKind; message: string };

/** Published (no payload) when a worker begins parsing; lets observers see a parse is in flight. */
export const parseStarted = channel("switchyard:document-parse:start");

const WORKER_URL = new URL("./parse-worker.mjs", import.meta.url);

/** Parses documents off the event loop, one worker thread per document, under `ParseLimits`. */
export class DocumentParser {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly workers = new Set<Worker>();
  private closed = false;

  constructor(readonly limits: ParseLimits = DEFAULT_PARSE_LIMITS) {}

  async parse(format: DocumentFormat, bytes: Uint8Array): Promise<ParsedDocument> {
    if (format !== "pdf" && bytes.byteLength <= INLINE_TEXT_BYTES) return parseDocument(format, bytes);
    await this.acquire();
    try {
      if (this.closed) throw new Error("the document parser is closed");
      return await this.inWorker(format, bytes);
    } finally {
      this.release();
    }
  }

  /** Terminates running parses (they fail) and refuses new ones; used at shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.workers].map((w) => w.terminate()));
  }

  private inWorker(format: DocumentFormat, bytes: Uint8Array): Promise<ParsedDocument> {
    const { maxDecodedBytes, timeoutMs, maxHeapMb } = this.limits;
    // A copy the worker owns (Buffer#slice would share, and transferring would detach, the caller's bytes).
    const job: ParseJob = { format, bytes: new Uint8Array(bytes), maxDecodedBytes };
    const worker = new Worker(WORKER_URL, {
      workerData: job,
      transferList: [job.bytes.buffer as ArrayBuffer],
      resourceLimits: { maxOldGenerationSizeMb: maxHeapMb, maxYoungGenerationSizeMb: Math.min(64, maxHeapMb) },
    });
    this.workers.add(worker);
    return new Promise<ParsedDocument>((resolve, reject) => {
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        this.workers.delete(worker);
        void worker.terminate();
        outcome();
      };
      const timer = setTimeout(
        () => finish(() => reject(new KnowledgeError("too_large", `the document took longer than ${timeoutMs} ms to parse (the parse time limit); nothing was indexed`, "file"))),
        timeoutMs,
      );
      worker.on("message", (reply: ParseReply) => {
        if (reply.type === "started") parseStarted.publish(undefined);
        else if (reply.type === "done") finish(() => resolve(reply.document));
        else finish(() => reject(new KnowledgeError(reply.kind, reply.message, "file")));
      });
      worker.on("error", (err: Error & { code?: string }) => finish(() => reject(workerFailure(err, maxHeapMb))));
      worker.on("exit", () => finish(() => reject(new KnowledgeError("invalid", "the document parser stopped before finishing", "file"))));
    });
  }

  private async acquire(): Promise<void> {
    if (this.running < this.limits.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve)); // release hands its slot over
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

function workerFailure(err: Error & { code?: string }, maxHeapMb: number): KnowledgeError {
  if (err.code === "ERR_WORKER_OUT_OF_MEMORY") {
    return new KnowledgeError("too_large", `the document needs more than ${maxHeapMb} MB of memory to parse (the parse memory limit); nothing was indexed`, "file");
  }
  return new KnowledgeError("invalid", `could not parse the document: ${err.message}`, "file");
}
