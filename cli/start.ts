import { ConfigError, loadConfig } from "../edge/config.ts";
import { startPlatform, type Platform } from "../edge/node.ts";
import { DataDirInUseError } from "../services/store/data-dir-lock.ts";

/** `switchyard start [--port N --host H --data-dir DIR ...]`: serves until SIGINT/SIGTERM. */
export async function startCommand(argv: string[]): Promise<number> {
  let config;
  try {
    config = loadConfig(process.env, argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`switchyard: ${err.message}\n`);
    return 2;
  }
  // The handlers go in before startPlatform logs "switchyard listening": a signal sent as soon as that
  // line is read must shut the platform down, not kill the process by the default action.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  let platform: Platform;
  try {
    platform = await startPlatform(config);
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    process.stderr.write(`switchyard: cannot start: ${err.message}\n`);
    return 2;
  }
  const signal = await signalled;
  platform.logger.info({ signal }, "signal received");
  await platform.close();
  return 0;
}
