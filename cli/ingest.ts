import { readdirSync, statSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { eq } from "drizzle-orm";
import { ingestPolicy } from "../edge/tenant-settings.ts";
import { openKnowledgeBase } from "../services/retrieval/index.ts";
import { ApiKeyStore } from "../services/store/api-keys.ts";
import { dataDirHolder, DataDirInUseError, lockDataDir } from "../services/store/data-dir-lock.ts";
import { openDatabase, type OpenDatabase } from "../services/store/db.ts";
import { tenants, type Tenant } from "../services/store/schema.ts";
import { directTarget } from "./ingest-direct.ts";
import { httpTarget, ServerUnreachableError, tenantOfKey } from "./ingest-http.ts";
import { ingestFiles, type OutputStream } from "./ingest-run.ts";
import type { CommandHelp } from "./help.ts";

const USAGE = "usage: switchyard ingest PATH... (--tenant ID | --key KEY) [--data-dir DIR] [--url URL] [--embedding-model DIR] [--int8]";

export const INGEST_HELP: CommandHelp = {
  usage: "ingest PATH... (--tenant ID | --key KEY) [options]",
  summary:
    "Adds files, and folders recursively (.txt, .md, .html, .pdf, .jsonl; .zip, .tar, .tar.gz archives of them), to a tenant's knowledge base.\n" +
    "With a server running on the data dir (or --url), the files go through its HTTP API; otherwise they are ingested directly.",
  options: [
    { flag: "--tenant ID", text: "the tenant whose knowledge base gets the files (or give --key)" },
    { flag: "--key KEY", text: "a tenant key for the server (default $SWITCHYARD_API_KEY; needed with --url)" },
    { flag: "--url URL", text: "a running server to send the files to (default: the one holding the data dir, if any)" },
    { flag: "--data-dir DIR", text: "the platform's data dir (default $SWITCHYARD_DATA_DIR or ./data)" },
    { flag: "--embedding-model DIR", text: "the embedding model the server uses (default $SWITCHYARD_EMBEDDING_MODEL, else USE Lite)" },
    { flag: "--int8", text: "USE Lite with int8 dense layers, as the server's SWITCHYARD_EMBEDDING_INT8=1" },
  ],
};
const EXTENSIONS = new Set([".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl", ".ndjson", ".zip", ".tar", ".tgz", ".gz"]);

interface IngestArgs {
  paths: string[];
  tenant?: string;
  dataDir: string;
  /** A server to send the documents to (default: the one running on the data dir, if any). */
  url?: string;
  /** A tenant key for the server. */
  key?: string;
  embeddingModel?: string;
  int8: boolean;
}

/** A refusal explained to the user (exit code 2). */
class UsageError extends Error {}

/**
 * `switchyard ingest PATH...`: adds files (folders recursively, by extension) to a tenant's knowledge
 * base, with a progress bar. With a server running on the data dir (or `--url`), the files go through
 * its HTTP API, so its indexes stay the only ones written; otherwise this process holds the data dir's
 * lock and ingests directly. Exit 0 when all succeeded.
 */
export async function ingestCommand(argv: string[], out: OutputStream = process.stderr): Promise<number> {
  let args: IngestArgs;
  let files: string[];
  try {
    args = parseArgs(argv);
    files = args.paths.flatMap((p) => collectFiles(resolve(p), true));
  } catch (err) {
    out.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    if (args.url) return await viaServer(args.url, args, files, out);
    const holder = dataDirHolder(args.dataDir);
    if (holder?.role === "server" && holder.url) {
      out.write(`sending to the switchyard server at ${holder.url} (pid ${holder.pid}) that serves ${resolve(args.dataDir)}\n`);
      return await viaServer(holder.url, args, files, out);
    }
    return await direct(args, files, out);
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof DataDirInUseError || err instanceof ServerUnreachableError)) throw err;
    out.write(`${err.message}\n`);
    return 2;
  }
}

/** No server: this process takes the data dir's lock and writes the knowledge base itself. */
async function direct(args: IngestArgs, files: string[], out: OutputStream): Promise<number> {
  const tenant = requireTenant(args);
  const lock = lockDataDir(args.dataDir, "ingest");
  const store = openDatabase(join(args.dataDir, "switchyard.db"));
  try {
    const policy = ingestPolicy(checkTenant(store, tenant));
    if (files.length === 0) return noFiles(out);
    // Must match the server's embedder, or its next start rebuilds every index of the tenant.
    const kb = await openKnowledgeBase(store, args.dataDir, { inlineBytes: 0, embeddingModel: args.embeddingModel, int8: args.int8 });
    try {
      return await ingestFiles(directTarget(kb, tenant, policy), tenant, files, out);
    } finally {
      await kb.close();
    }
  } finally {
    store.close();
    lock.release();
  }
}

/**
 * Through a server's API. With `--key`, as that key's tenant. Without one, only for the server on this
 * data dir: whoever may write the data dir could ingest directly anyway, so the command issues itself a
 * tenant key in the database and revokes it when done.
 */
async function viaServer(url: string, args: IngestArgs, files: string[], out: OutputStream): Promise<number> {
  const base = url.replace(/\/+$/, "");
  if (args.key) {
    const tenant = await tenantOfKey(base, args.key).catch((err: Error) => {
      throw err instanceof ServerUnreachableError ? err : new UsageError(err.message);
    });
    if (args.tenant && args.tenant !== tenant) throw new UsageError(`--key belongs to tenant ${tenant}, not ${args.tenant}`);
    if (files.length === 0) return noFiles(out);
    return ingestFiles(httpTarget(base, args.key), tenant, files, out);
  }
  if (args.url) throw new UsageError("--url needs --key, a tenant key of that server");
  const tenant = requireTenant(args);
  const store = openDatabase(join(args.dataDir, "switchyard.db"));
  try {
    checkTenant(store, tenant);
    if (files.length === 0) return noFiles(out);
    const keys = new ApiKeyStore(store.db);
    const issued = await keys.issue("tenant", tenant, "switchyard ingest (temporary)");
    try {
      return await ingestFiles(httpTarget(base, issued.key), tenant, files, out);
    } finally {
      await keys.revoke(issued.row.id);
    }
  } finally {
    store.close();
  }
}

function requireTenant(args: IngestArgs): string {
  if (!args.tenant) throw new UsageError(`--tenant is required (or --key, with a server running)\n${USAGE}`);
  return args.tenant;
}

/** The tenant's row; a UsageError when there is none. */
function checkTenant(store: OpenDatabase, tenant: string): Tenant {
  const row = store.db.select().from(tenants).where(eq(tenants.id, tenant)).get();
  if (!row) throw new UsageError(`unknown tenant: ${tenant}`);
  return row;
}

function noFiles(out: OutputStream): number {
  out.write("no ingestible files found (.txt, .md, .html, .pdf, .jsonl)\n");
  return 1;
}

function parseArgs(argv: string[]): IngestArgs {
  const paths: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      paths.push(arg);
      continue;
    }
    if (arg === "--int8") {
      flags.set(arg, "1");
      continue;
    }
    const [flag, inline] = arg.split(/=(.*)/s, 2);
    if (!["--tenant", "--data-dir", "--embedding-model", "--url", "--key"].includes(flag)) throw new Error(`unknown option ${flag}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`option ${flag} needs a value`);
    flags.set(flag, value);
  }
  const tenant = flags.get("--tenant");
  const key = flags.get("--key") ?? (process.env.SWITCHYARD_API_KEY || undefined);
  if (!tenant && !key) throw new Error("--tenant is required (or --key, for a running server)");
  if (paths.length === 0) throw new Error("give at least one file or folder");
  return {
    paths,
    tenant,
    url: flags.get("--url"),
    key,
    dataDir: flags.get("--data-dir") ?? process.env.SWITCHYARD_DATA_DIR ?? "./data",
    embeddingModel: flags.get("--embedding-model") ?? (process.env.SWITCHYARD_EMBEDDING_MODEL || undefined),
    int8: flags.has("--int8") || process.env.SWITCHYARD_EMBEDDING_INT8 === "1",
  };
}

/** Files under `path`: named files always, files found in folders only with a known extension. */
function collectFiles(path: string, named: boolean): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new Error(`no such file or folder: ${path}`);
  }
  if (stat.isDirectory()) {
    return readdirSync(path).sort().flatMap((entry) => (entry.startsWith(".") ? [] : collectFiles(join(path, entry), false)));
  }
  return named || EXTENSIONS.has(extname(path).toLowerCase()) ? [path] : [];
}
