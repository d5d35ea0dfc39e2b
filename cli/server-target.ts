/**
 * Which server the fine-tuning commands talk to, and with which key: `--url`, else the server holding
 * the data dir (its lock records where it listens, as `switchyard ingest` finds it), else the address
 * `switchyard start` would listen on with this environment (SWITCHYARD_HOST/PORT, default
 * http://127.0.0.1:8787). The key is `--key`, else $SWITCHYARD_API_KEY: a tenant key, since files and
 * jobs belong to a tenant.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../hosts/node/config.ts";
import { dataDirHolder } from "../services/store/data-dir-lock.ts";
import { formatHelp, type CommandHelp } from "./help.ts";
import { ApiRequestError, ServerApi, ServerUnreachableError } from "./server-api.ts";

export interface ServerFlags {
  url?: string;
  key?: string;
  dataDir?: string;
}

/** A refusal explained to the user (exit code 2). */
export class UsageError extends Error {}

/** Options declared as `{ name: { type, value?, text } }` (the help's table), parsed strictly; a bad flag is a UsageError. */
export function parseCommandLine(argv: string[], declared: Record<string, { type: "string" | "boolean" }>) {
  const options = Object.fromEntries(Object.entries(declared).map(([name, o]) => [name, { type: o.type }]));
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export const SERVER_OPTIONS = {
  url: { type: "string", value: "URL", text: "the server (default: the one serving --data-dir, else http://$SWITCHYARD_HOST:$SWITCHYARD_PORT, 127.0.0.1:8787)" },
  key: { type: "string", value: "KEY", text: "a tenant API key (default $SWITCHYARD_API_KEY)" },
  "data-dir": { type: "string", value: "DIR", text: "the data dir whose running server to use (default $SWITCHYARD_DATA_DIR or ./data)" },
} as const;

export function serverUrl(flags: ServerFlags, env: Record<string, string | undefined> = process.env): string {
  if (flags.url) return flags.url;
  const holder = dataDirHolder(flags.dataDir ?? env.SWITCHYARD_DATA_DIR ?? "./data");
  if (holder?.role === "server" && holder.url) return holder.url;
  let host = "127.0.0.1";
  let port = 8787;
  try {
    ({ host, port } = loadConfig(env));
  } catch {
    // A bad setting in the environment is `switchyard start`'s to report; the default address stays.
  }
  if (host === "0.0.0.0" || host === "::") host = "127.0.0.1";
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export function serverApi(flags: ServerFlags, env: Record<string, string | undefined> = process.env): ServerApi {
  const key = flags.key ?? (env.SWITCHYARD_API_KEY || undefined);
  if (!key) throw new UsageError("a tenant API key is needed: --key KEY, or set $SWITCHYARD_API_KEY");
  return new ServerApi(serverUrl(flags, env), key);
}

/**
 * The shell of a command that talks to a server: `parse` and the server's address (a UsageError: the
 * message and the help, exit 2), then `run`; a server that cannot be reached is exit 2, a refused
 * request exit 1 (2 for a bad key). `explain` handles a command's own errors first (its exit code, or undefined).
 */
export async function serverCommand<A extends { server: ServerFlags }>(
  command: { name: string; help: CommandHelp },
  argv: string[],
  stderr: NodeJS.WritableStream,
  parse: (argv: string[]) => A,
  run: (api: ServerApi, args: A) => Promise<number>,
  explain: (err: unknown) => number | undefined = () => undefined,
): Promise<number> {
  const prefix = `switchyard ${command.name}`;
  let args: A;
  let api: ServerApi;
  try {
    args = parse(argv);
    api = serverApi(args.server);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`${prefix}: ${err.message}\n${formatHelp(command.help)}`);
    return 2;
  }
  try {
    return await run(api, args);
  } catch (err) {
    const code = explain(err);
    if (code !== undefined) return code;
    if (err instanceof ServerUnreachableError) {
      stderr.write(`${prefix}: ${err.message}\n(is a server running? start one with \`switchyard start\`, or give --url)\n`);
      return 2;
    }
    if (err instanceof ApiRequestError) {
      stderr.write(`${prefix}: the server refused the request (HTTP ${err.status}${err.param ? `, ${err.param}` : ""}): ${err.message}\n`);
      return err.status === 401 ? 2 : 1;
    }
    throw err;
  }
}
