import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/** Index temp files (`<tenant>.hnsw.tmp-<pid>` and its `.json`): a save that crashed before its rename. */
const INDEX_TEMP = /\.hnsw\.tmp-/;

/**
 * Removes what a crash can leave behind, at start before any writer runs: index temp files, and
 * uploaded document files that no queued or processing document will read (an upload that crashed
 * between writing its file and its row, or an ingestion that crashed after its commit).
 * Returns the paths removed.
 */
export function sweepLeftovers(indexDir: string, uploadDir: string, pendingDocumentIds: ReadonlySet<string>): string[] {
  const removed: string[] = [];
  const remove = (path: string) => {
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  };
  for (const name of readdirSync(indexDir)) if (INDEX_TEMP.test(name)) remove(join(indexDir, name));
  for (const name of readdirSync(uploadDir)) if (!pendingDocumentIds.has(name)) remove(join(uploadDir, name));
  return removed;
}
