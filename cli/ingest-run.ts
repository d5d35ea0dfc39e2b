import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import cliProgress from "cli-progress";

export type OutputStream = NodeJS.WritableStream & { isTTY?: boolean };

/** A document's ingestion state, as either target reports it. */
export interface DocumentState {
  status: "queued" | "processing" | "ready" | "failed";
  /** 0..1 while processing. */
  progress: number;
  chunkCount: number;
  warning?: string | null;
  error?: string | null;
}

/**
 * The upload outcome of a file of the batch (`file`: its index), or of one entry of an archive file
 * (`entry`: its path inside): stored (or already there), or refused with a readable reason.
 */
export type UploadOutcome = ({ id: string; created: boolean } | { error: string }) & { file: number; entry?: string };

/** Where `switchyard ingest` sends files: the knowledge base itself, or a running server's HTTP API. */
export interface IngestTarget {
  /** Stores a batch of files (an archive stands for its files) as one unit of ingestion; outcomes in file order. Throws (the whole batch refused) with a readable message. */
  uploadBatch(files: Array<{ bytes: Uint8Array; name: string }>): Promise<UploadOutcome[]>;
  /** States of stored documents, in `ids` order. */
  states(ids: string[]): Promise<DocumentState[]>;
  /** Resolves when states may have changed (at most a short while). */
  wait(): Promise<void>;
}

/** Files per batch request, and bytes (a larger file goes alone); well under the server's batch and body limits. */
const BATCH_FILES = 100;
const BATCH_BYTES = 8 * 1024 * 1024;

/** Uploads the files in batches, follows their ingestion with a progress display, and prints a summary. Exit code: 0 when all succeeded. */
export async function ingestFiles(target: IngestTarget, tenant: string, files: string[], out: OutputStream): Promise<number> {
  const failures: string[] = [];
  const accepted: Array<{ file: string; id: string }> = [];
  const progress = progressDisplay(out, files.length);
  let sent = 0;
  for (const batch of batches(files)) {
    const read = batch.map((file) => ({ file, bytes: readFileSync(file) }));
    let outcomes: UploadOutcome[];
    try {
      outcomes = await target.uploadBatch(read.map(({ file, bytes }) => ({ bytes, name: basename(file) })));
    } catch (err) {
      outcomes = batch.map((_, i) => ({ error: (err as Error).message, file: i }));
    }
    for (const outcome of outcomes) {
      const file = outcome.entry === undefined ? batch[outcome.file] : `${batch[outcome.file]}:${outcome.entry}`;
      if ("error" in outcome) failures.push(`${file}: ${outcome.error}`);
      else {
        accepted.push({ file, id: outcome.id });
        if (!outcome.created) out.write(`${file}: already in the knowledge base (${outcome.id})\n`);
      }
    }
    sent += batch.length;
    progress.update(sent / 2, failures.length);
  }
  const uploaded = files.length / 2;
  // Archives make more documents than files: the second half of the bar is the documents' share settled.
  const documents = accepted.length + failures.length;
  let states: DocumentState[];
  for (;;) {
    states = accepted.length > 0 ? await target.states(accepted.map((a) => a.id)) : [];
    const settled = states.filter(isSettled).length;
    const done = states.reduce((sum, d) => sum + (isSettled(d) ? 1 : d.progress), failures.length);
    progress.update(uploaded + (uploaded * done) / Math.max(1, documents), Math.round(((settled + failures.length) * files.length) / Math.max(1, documents)));
    if (settled === accepted.length) break;
    await target.wait();
  }
  let chunks = 0;
  accepted.forEach(({ file }, i) => {
    const doc = states[i];
    chunks += doc.chunkCount;
    if (doc.status === "failed") failures.push(`${file}: ${doc.error}`);
    else if (doc.warning) out.write(`${file}: warning: ${doc.warning}\n`);
  });
  progress.update(files.length, files.length);
  progress.stop();
  for (const line of failures) out.write(`failed: ${line}\n`);
  out.write(`ingested ${documents - failures.length} of ${documents} files into tenant ${tenant} (${chunks} chunks)\n`);
  return failures.length > 0 ? 1 : 0;
}

/** Consecutive runs of files of at most BATCH_FILES files and BATCH_BYTES bytes (by their size on disk). */
function* batches(files: string[]): Generator<string[]> {
  let batch: string[] = [];
  let bytes = 0;
  for (const file of files) {
    const size = statSync(file).size;
    if (batch.length > 0 && (batch.length === BATCH_FILES || bytes + size > BATCH_BYTES)) {
      yield batch;
      [batch, bytes] = [[], 0];
    }
    batch.push(file);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}

const isSettled = (d: DocumentState) => d.status === "ready" || d.status === "failed";

/** Half of each file's share is its upload, half its ingestion. */
function progressDisplay(out: OutputStream, total: number) {
  if (out.isTTY) {
    const bar = new cliProgress.SingleBar({ stream: out, format: "ingest [{bar}] {percentage}% | {files}/{total} files", hideCursor: true }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, { files: 0 });
    return { update: (done: number, files: number) => bar.update(done, { files }), stop: () => bar.stop() };
  }
  let printed = -1;
  return {
    update(done: number) {
      const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (tenth > printed) out.write(`ingest: ${(printed = tenth) * 10}%\n`);
    },
    stop() {},
  };
}
