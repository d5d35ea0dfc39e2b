import { pino } from "pino";
import { ConfigError, loadConfig } from "../hosts/node/config.ts";
import { loadTrainFn } from "../hosts/node/train-fn.ts";
import { startTrainer } from "../hosts/node/trainer.ts";
import type { CommandHelp } from "./help.ts";

export const SERVE_HELP: CommandHelp = {
  usage: "serve trainer [options]",
  summary:
    "Runs one plane alone. `trainer`: the fine-tuning worker loop over the data dir's database and the model, until SIGINT/SIGTERM.\n" +
    "`switchyard start` runs it as a child process (SWITCHYARD_TRAINER=off: not); it takes the same options as `start` and does not hold the data dir's lock.",
  options: [{ flag: "--data-dir DIR, --model MODEL, ...", text: "as for `switchyard start` (see `switchyard start --help`)" }],
};

/** `switchyard serve trainer [--data-dir DIR ...]`. */
export async function serveCommand(argv: string[]): Promise<number> {
  const [plane, ...rest] = argv;
  if (plane !== "trainer") {
    process.stderr.write(`switchyard serve: expected a plane to serve ('trainer'), got ${plane === undefined ? "nothing" : JSON.stringify(plane)}\n`);
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
