/**
 * One platform of a benchmark, alone in its process, so the load generator (the parent) never shares
 * the edge's event loop: starts the platform with the settings given as JSON (environment variables)
 * in argv[2], sends `{ url }` over IPC once it listens, and closes on the message "close".
 */
import { loadConfig } from "../hosts/node/config.ts";
import { startPlatform } from "../hosts/node/server.ts";

const env = JSON.parse(process.argv[2] ?? "{}") as Record<string, string>;
const platform = await startPlatform(loadConfig(env), { announce: () => {} });
process.send!({ url: platform.url });
process.on("message", (message) => {
  if (message !== "close") return;
  void platform.close().then(() => process.exit(0));
});
