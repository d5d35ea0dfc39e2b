import { fork, type ChildProcess } from "node:child_process";
import { channel } from "node:diagnostics_channel";
import { fileURLToPath } from "node:url";
import { KnowledgeError, type KnowledgeErrorKind } from "./errors.ts";
import { parseDocument, type DocumentFormat, type ParsedDocument } from "./parse.ts";

/** What one parse of an untrusted document may use. */
export interface ParseLimits {
  /** Bytes the parser may allocate for decoded data (PDF streams inflate far past their file size). */
  maxDecodedBytes: number;
  /** Wall-clock limit; the parsing process is killed when it is reached. */
  timeoutMs: number;
  /**
   * JS heap of the parsing process (`--max-old-space-size`). A parse that reaches it kills only that
   * process, which is why parsing runs in a child process rather than a worker thread: a worker at its
   * `resourceLimits` can abort the whole server instead (nodejs/node#47224).
   */
  maxHeapMb: number;
  /** Parses running at once; more wait, so a burst of hostile uploads cannot multiply the limits above. */
  concurrency: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = { maxDecodedBytes: 256 * 1024 * 1024, timeoutMs: 30_000, maxHeapMb: 512, concurrency: 2 };

/** Text formats this small parse on the calling thread: linear in their size, and a process costs more to start. */
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

/** Published (no payload) when a parsing process begins parsing; lets observers see a parse is in flight. */
export const parseStarted = channel("switchyard:document-parse:start");

const CHILD_PATH = fileURLToPath(new URL("./parse-worker.mjs", import.meta.url));

/** Parses documents off the event loop, one child process per document, under `ParseLimits`. */
export class DocumentParser {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly children = new Set<ChildProcess>();
  private closed = false;

  constructor(readonly limits: ParseLimits = DEFAULT_PARSE_LIMITS) {}

  async parse(format: DocumentFormat, bytes: Uint8Array): Promise<ParsedDocument> {
    if (format !== "pdf" && bytes.byteLength <= INLINE_TEXT_BYTES) return parseDocument(format, bytes);
    await this.acquire();
    try {
      if (this.closed) throw new Error("the document parser is closed");
      return await this.inChild(format, bytes);
    } finally {
      this.release();
    }
  }

  /** Terminates running parses (they fail) and refuses new ones; used at shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    for (const child of this.children) child.kill("SIGKILL");
  }

  private inChild(format: DocumentFormat, bytes: Uint8Array): Promise<ParsedDocument> {
    const { maxDecodedBytes, timeoutMs, maxHeapMb } = this.limits;
    const child = fork(CHILD_PATH, [], {
      execArgv: [`--max-old-space-size=${maxHeapMb}`],
      serialization: "advanced", // Uint8Arrays cross as they are
      stdio: ["ignore", "ignore", "ignore", "ipc"],
    });
    this.children.add(child);
    return new Promise<ParsedDocument>((resolve, reject) => {
      let settled = false;
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        this.children.delete(child);
        if (child.exitCode === null) child.kill("SIGKILL");
        if (!settled) outcome();
        settled = true;
      };
      const timer = setTimeout(
        () => finish(() => reject(new KnowledgeError("too_large", `the document took longer than ${timeoutMs} ms to parse (the parse time limit); nothing was indexed`, "file"))),
        timeoutMs,
      );
      child.on("message", (reply: ParseReply) => {
        if (reply.type === "started") parseStarted.publish(undefined);
        else if (reply.type === "done") finish(() => resolve(reply.document));
        else finish(() => reject(new KnowledgeError(reply.kind, reply.message, "file")));
      });
      child.on("error", (err) => finish(() => reject(new KnowledgeError("invalid_request", `could not parse the document: ${err.message}`, "file"))));
      child.on("exit", (code, signal) => finish(() => reject(exitFailure(code, signal, maxHeapMb))));
      child.send({ format, bytes, maxDecodedBytes } satisfies ParseJob);
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

/** Why a parsing process ended without an answer: V8 aborts (SIGABRT, or SIGTRAP) when the heap limit is reached. */
function exitFailure(code: number | null, signal: NodeJS.Signals | null, maxHeapMb: number): KnowledgeError {
  if (signal === "SIGABRT" || signal === "SIGTRAP" || code === 134) {
    return new KnowledgeError("too_large", `the document needs more than ${maxHeapMb} MB of memory to parse (the parse memory limit); nothing was indexed`, "file");
  }
  return new KnowledgeError("invalid_request", `the document parser stopped before finishing (${signal ?? `exit code ${code}`})`, "file");
}
