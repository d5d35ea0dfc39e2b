/**
 * Whether a lock file's holder still runs, for the locks that name their holder by pid (the data
 * dir's `switchyard.lock`, a compile cache's `weights.lock`). A pid alive on this host holds the lock,
 * with one exception: our own pid on a lock written before this process started. In a container the
 * server is always pid 1 (or another fixed pid), so a container restarted after a kill finds its
 * predecessor's lock under its own pid; that lock is stale, not ours.
 */

/** When this process started (ms since the epoch), rounded down: a lock this process wrote is never older. */
const PROCESS_STARTED_AT = Math.floor(Date.now() - process.uptime() * 1000) - 1;

/** Whether the process that wrote a lock naming `pid` at `writtenAtMs` still runs. */
export function lockHolderAlive(pid: number, writtenAtMs: number): boolean {
  if (pid === process.pid) return writtenAtMs >= PROCESS_STARTED_AT;
  return isAlive(pid);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
