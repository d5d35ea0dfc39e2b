import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import cliProgress from "cli-progress";
import { eq } from "drizzle-orm";
import { openKnowledgeBase, type KnowledgeBase } from "../services/retrieval/index.ts";
import { openDatabase } from "../services/store/db.ts";
import { tenants } from "../services/store/schema.ts";
import type { CommandHelp } from "./help.ts";

const USAGE = "usage: switchyard ingest PATH... --tenant ID [--data-dir DIR] [--embedding-model DIR] [--int8]";

export const INGEST_HELP: CommandHelp = {
  usage: "ingest PATH... --tenant ID [options]",
  summary: "Adds files, and folders recursively (.txt, .md, .html, .pdf, .jsonl), to a tenant's knowledge base in the data dir.",
  options: [
    { flag: "--tenant ID", text: "the tenant whose knowledge base gets the files (required)" },
    { flag: "--data-dir DIR", text: "the platform's data dir (default $SWITCHYARD_DATA_DIR or ./data)" },
    { flag: "--embedding-model DIR", text: "the embedding model the server uses (default $SWITCHYARD_EMBEDDING_MODEL, else USE Lite)" },
    { flag: "--int8", text: "USE Lite with int8 dense layers, as the server's SWITCHYARD_EMBEDDING_INT8=1" },
  ],
};

const EXTENSIONS = new Set([".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl", ".ndjson"]);

interface IngestArgs {
  paths: string[];
  tenant: string;
  dataDir: string;
  embeddingModel?: string;
  int8: boolean;
}

/**
 * `switchyard ingest PATH... --tenant ID`: adds files (folders recursively, by extension) to a
 * tenant's knowledge base in the embedded data dir, with a progress bar. Exit 0 when all succeeded.
 */
export async function ingestCommand(argv: string[], out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): Promise<number> {
  let args: IngestArgs;
  let files: string[];
  try {
    args = parseArgs(argv);
    files = args.paths.flatMap((p) => collectFiles(resolve(p), true));
  } catch (err) {
    out.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const store = openDatabase(join(args.dataDir, "switchyard.db"));
  try {
    if (!store.db.select().from(tenants).where(eq(tenants.id, args.tenant)).get()) {
      out.write(`unknown tenant: ${args.tenant}\n`);
      return 2;
    }
    if (files.length === 0) {
      out.write("no ingestible files found (.txt, .md, .html, .pdf, .jsonl)\n");
      return 1;
    }
    // Must match the server's embedder, or its next start rebuilds every index of the tenant.
    const kb = await openKnowledgeBase(store, args.dataDir, { inlineBytes: 0, embeddingModel: args.embeddingModel, int8: args.int8 });
    try {
      return await ingestFiles(kb, args.tenant, files, out);
    } finally {
      await kb.close();
    }
  } finally {
    store.close();
  }
}

async function ingestFiles(kb: KnowledgeBase, tenant: string, files: string[], out: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  const failures: string[] = [];
  const accepted: Array<{ file: string; id: string }> = [];
  for (const file of files) {
    try {
      const { document, created } = await kb.upload(tenant, { bytes: readFileSync(file), fileName: basename(file), title: basename(file) });
      accepted.push({ file, id: document.id });
      if (!created) out.write(`${file}: already in the knowledge base (${document.id})\n`);
    } catch (err) {
      failures.push(`${file}: ${(err as Error).message}`);
    }
  }
  const progress = progressDisplay(out, accepted.length);
  let settled = false;
  const finished = kb.idle().then(() => (settled = true));
  while (!settled) {
    const states = accepted.map(({ id }) => kb.get(tenant, id));
    const done = states.reduce((sum, d) => sum + (d.status === "ready" || d.status === "failed" ? 1 : d.progress), 0);
    progress.update(done, states.filter((d) => d.status === "ready" || d.status === "failed").length);
    await Promise.race([finished, new Promise((r) => setTimeout(r, 200))]);
  }
  let chunks = 0;
  for (const { file, id } of accepted) {
    const doc = kb.get(tenant, id);
    chunks += doc.chunkCount;
    if (doc.status === "failed") failures.push(`${file}: ${doc.error}`);
    else if (doc.warning) out.write(`${file}: warning: ${doc.warning}\n`);
  }
  progress.update(accepted.length, accepted.length);
  progress.stop();
  for (const line of failures) out.write(`failed: ${line}\n`);
  out.write(`ingested ${files.length - failures.length} of ${files.length} files into tenant ${tenant} (${chunks} chunks)\n`);
  return failures.length > 0 ? 1 : 0;
}

function progressDisplay(out: NodeJS.WritableStream & { isTTY?: boolean }, total: number) {
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
    if (!["--tenant", "--data-dir", "--embedding-model"].includes(flag)) throw new Error(`unknown option ${flag}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`option ${flag} needs a value`);
    flags.set(flag, value);
  }
  const tenant = flags.get("--tenant");
  if (!tenant) throw new Error("--tenant is required");
  if (paths.length === 0) throw new Error("give at least one file or folder");
  return {
    paths,
    tenant,
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
