import { readFileSync } from "node:fs";
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

/** Where `switchyard ingest` sends files: the knowledge base itself, or a running server's HTTP API. */
export interface IngestTarget {
  /** Stores one file; throws with a readable message when it is refused. */
  upload(file: { bytes: Uint8Array; name: string }): Promise<{ id: string; created: boolean }>;
  state(id: string): Promise<DocumentState>;
  /** Resolves when states may have changed (at most a short while). */
  wait(): Promise<void>;
}

/** Uploads the files, follows their ingestion with a progress display, and prints a summary. Exit code: 0 when all succeeded. */
export async function ingestFiles(target: IngestTarget, tenant: string, files: string[], out: OutputStream): Promise<number> {
  const failures: string[] = [];
  const accepted: Array<{ file: string; id: string }> = [];
  const progress = progressDisplay(out, files.length);
  for (const [i, file] of files.entries()) {
    try {
      const { id, created } = await target.upload({ bytes: readFileSync(file), name: basename(file) });
      accepted.push({ file, id });
      if (!created) out.write(`${file}: already in the knowledge base (${id})\n`);
    } catch (err) {
      failures.push(`${file}: ${(err as Error).message}`);
    }
    progress.update((i + 1) / 2, failures.length);
  }
  const uploaded = files.length / 2;
  for (;;) {
    const states = await Promise.all(accepted.map(({ id }) => target.state(id)));
    const settled = states.filter(isSettled).length;
    const done = states.reduce((sum, d) => sum + (isSettled(d) ? 1 : d.progress), failures.length);
    progress.update(uploaded + done / 2, settled + failures.length);
    if (settled === accepted.length) break;
    await target.wait();
  }
  let chunks = 0;
  for (const { file, id } of accepted) {
    const doc = await target.state(id);
    chunks += doc.chunkCount;
    if (doc.status === "failed") failures.push(`${file}: ${doc.error}`);
    else if (doc.warning) out.write(`${file}: warning: ${doc.warning}\n`);
  }
  progress.update(files.length, files.length);
  progress.stop();
  for (const line of failures) out.write(`failed: ${line}\n`);
  out.write(`ingested ${files.length - failures.length} of ${files.length} files into tenant ${tenant} (${chunks} chunks)\n`);
  return failures.length > 0 ? 1 : 0;
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
