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
  let platform: Platform;
  try {
    platform = await startPlatform(config);
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    process.stderr.write(`switchyard: cannot start: ${err.message}\n`);
    return 2;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      platform.logger.info({ signal }, "signal received");
      void platform.close().then(resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
