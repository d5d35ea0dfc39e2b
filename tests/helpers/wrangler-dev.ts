/**
 * `wrangler dev --local` serving hosts/workers/worker.ts (wrangler.toml) on a free loopback port, offline:
 * a local D1 in a temp persist dir, the Worker's vars and secrets as --var. The D1 gets the project's
 * migrations in one `wrangler d1 execute --local --file` (the files in order, as `d1 migrations apply`
 * runs them; that command starts a local runtime per file, ~3 s each, so 13 files would take ~40 s).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./model-path.ts";

export interface WranglerDev {
  url: string;
  stop(): Promise<void>;
}

const WRANGLER = join(REPO_ROOT, "node_modules/wrangler/bin/wrangler.js");
// No telemetry, no update check prompts, no interactive session: nothing here may reach the network.
const QUIET = { WRANGLER_SEND_METRICS: "false", CI: "1", WRANGLER_LOG: "info", NO_COLOR: "1" };

/** Creates the local D1 of wrangler.toml's `DB` binding in `persistTo`, with every migration applied. */
export async function migrateLocalD1(persistTo: string): Promise<void> {
  const dir = join(REPO_ROOT, "services/store/migrations");
  const sql = readdirSync(dir).filter((f) => f.endsWith(".sql")).sort().map((f) => readFileSync(join(dir, f), "utf8")).join("\n");
  const file = join(persistTo, "migrations.sql");
  writeFileSync(file, sql);
  const args = [WRANGLER, "d1", "execute", "switchyard", "--local", "--persist-to", persistTo, "--file", file, "--yes"];
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...QUIET }, timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`wrangler d1 execute failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(),
    );
  });
}

/** A persist dir with the migrated local D1, to start wrangler dev on (prepared while the nodes boot). */
export async function preparedD1(): Promise<string> {
  const persistTo = mkdtempSync(join(tmpdir(), "switchyard-wrangler-"));
  await migrateLocalD1(persistTo);
  return persistTo;
}

/** wrangler dev on `persistTo` (preparedD1), with `vars` as the Worker's vars and secrets; removes the dir on stop. */
export async function startWranglerDev(persistTo: string, vars: Record<string, string>): Promise<WranglerDev> {
  const args = [WRANGLER, "dev", "--local", "--persist-to", persistTo, "--ip", "127.0.0.1", "--port", "0", "--show-interactive-dev-session=false"];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...QUIET }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const url = await readyUrl(child, exited).catch((err: unknown) => {
    kill(child);
    throw err;
  });
  return {
    url,
    async stop() {
      kill(child);
      await exited;
      rmSync(persistTo, { recursive: true, force: true });
    },
  };
}

function readyUrl(child: ChildProcess, exited: Promise<void>): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`wrangler dev was not ready within 120 s:\n${output}`)), 120_000);
    const read = (d: Buffer) => {
      output += d.toString();
      const ready = /Ready on (http:\/\/[\d.]+:\d+)/.exec(output);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]!);
      }
    };
    child.stdout!.on("data", read);
    child.stderr!.on("data", read);
    void exited.then(() => (clearTimeout(timer), reject(new Error(`wrangler dev exited:\n${output}`))));
  });
}

/** wrangler dev runs workerd as its own child: the whole process group goes. */
function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGTERM");
}
