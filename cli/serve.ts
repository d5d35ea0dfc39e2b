import { pino } from "pino";
import { ConfigError, loadConfig } from "../hosts/node/config.ts";
import { loadTrainFn } from "../hosts/node/train-fn.ts";
import { startTrainer } from "../hosts/node/trainer.ts";
import { NodeSecretMissingError, startPlaneNode, type NodePlane } from "../hosts/node/plane-server/serve-node.ts";
import { DataDirInUseError } from "../services/store/data-dir-lock.ts";
import type { CommandHelp } from "./help.ts";

export const SERVE_HELP: CommandHelp = {
  usage: "serve inference|retrieval|trainer [options]",
  summary:
    "Runs one plane alone. `inference` and `retrieval`: the plane over HTTP on --host/--port (its port's routes, /healthz, /readyz, /metrics),\n" +
    "refusing calls without SWITCHYARD_NODE_SECRET (required); an edge uses it with `switchyard start --inference-url URL` / `--retrieval-url URL`.\n" +
    "A retrieval node holds its data dir's lock: give it a data dir of its own. `trainer`: the fine-tuning worker loop over the data dir's database and the model, until SIGINT/SIGTERM.\n" +
    "`switchyard start` runs it as a child process (SWITCHYARD_TRAINER=off: not); it takes the same options as `start` and does not hold the data dir's lock.\n" +
    "`trainer --port N` (the flag on the command line): the control node, the worker loop plus the fine-tuning jobs, adapter catalog and files over HTTP\n" +
    "(same secret, health and metrics as the other nodes); an edge uses it with `switchyard start --trainer-url URL`, inference nodes share its data dir.",
  options: [{ flag: "--data-dir DIR, --model MODEL, ...", text: "as for `switchyard start` (see `switchyard start --help`)" }],
};

/** `switchyard serve inference|retrieval|trainer [--port N] [--data-dir DIR ...]`. */
export async function serveCommand(argv: string[]): Promise<number> {
  const [plane, ...rest] = argv;
  if (plane !== "trainer" && plane !== "inference" && plane !== "retrieval") {
    process.stderr.write(`switchyard serve: expected a plane to serve ('inference', 'retrieval' or 'trainer'), got ${plane === undefined ? "nothing" : JSON.stringify(plane)}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(process.env, rest);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`switchyard: ${err.message}\n`);
    return 2;
  }
  if (plane !== "trainer" || rest.some((a) => a === "--port" || a.startsWith("--port="))) return serveNode(plane, config);
  const logger = pino({ level: config.logLevel, base: { service: "switchyard-trainer" } });
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
    watchParent(process.env.SWITCHYARD_TRAINER_PARENT, () => resolve("parent exited"));
  });
  const trainer = await startTrainer(config, await loadTrainFn(process.env), logger);
  logger.info({ reason: await stopped }, "trainer stopping");
  await trainer.close();
  return 0;
}

/** `switchyard serve inference|retrieval` and `serve trainer --port N` (the control node): until SIGINT/SIGTERM. */
async function serveNode(plane: NodePlane, config: Parameters<typeof startPlaneNode>[1]): Promise<number> {
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  let node;
  try {
    node = await startPlaneNode(plane, config);
  } catch (err) {
    if (!(err instanceof NodeSecretMissingError || err instanceof DataDirInUseError)) throw err;
    process.stderr.write(`switchyard: cannot serve ${plane}: ${err.message}\n`);
    return 2;
  }
  const ended = await Promise.race([signalled, node.ready.then(() => signalled, () => "failed" as const)]);
  node.logger.info({ reason: ended }, "node stopping");
  await node.close();
  return ended === "failed" ? 1 : 0;
}

/** Under `switchyard start`: stop when the server is gone (killed without stopping us), as seen by our parent pid changing. */
function watchParent(parent: string | undefined, onGone: () => void): void {
  if (parent === undefined) return;
  const timer = setInterval(() => {
    if (String(process.ppid) !== parent) {
      clearInterval(timer);
      onGone();
    }
  }, 1000);
  timer.unref();
}
