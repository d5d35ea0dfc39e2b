#!/usr/bin/env node
// The image's HEALTHCHECK (Docker; Kubernetes uses the manifests' probes instead). It reads the command of
// pid 1 (`switchyard serve inference|retrieval|trainer` or `switchyard start`) to know what to ask:
// a plane node's /healthz, the edge's /health. The trainer serves no HTTP (see infra/README.md): it is
// healthy while it runs. Exit 0 healthy, 1 not.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

/** What to probe for a process started with `args` (its argv): a path and port, or nothing. */
export function healthTarget(args, env) {
  const serving = args.indexOf("serve");
  const plane = serving >= 0 ? args[serving + 1] : undefined;
  if (plane === "trainer") return undefined;
  const at = args.findIndex((a) => a === "--port" || a.startsWith("--port="));
  const port = at < 0 ? (env.SWITCHYARD_PORT ?? "8787") : args[at].includes("=") ? args[at].slice("--port=".length) : args[at + 1];
  return { path: plane === undefined ? "/health" : "/healthz", port };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const target = healthTarget(readFileSync("/proc/1/cmdline", "utf8").split("\0").filter(Boolean), process.env);
  if (target === undefined) process.exit(0);
  try {
    const response = await fetch(`http://127.0.0.1:${target.port}${target.path}`, { signal: AbortSignal.timeout(4000) });
    process.exit(response.ok ? 0 : 1);
  } catch {
    process.exit(1);
  }
}
