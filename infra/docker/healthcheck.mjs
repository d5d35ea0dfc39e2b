#!/usr/bin/env node
// The image's HEALTHCHECK (Docker; Kubernetes uses the manifests' probes instead). It reads the command of
// pid 1 (`switchyard serve inference|retrieval|trainer` or `switchyard start`) to know what to ask:
// a plane node's /healthz, the edge's /health. The trainer serves no HTTP (see infra/README.md): it is
// healthy while it runs. Exit 0 healthy, 1 not.
import { readFileSync } from "node:fs";

const args = readFileSync("/proc/1/cmdline", "utf8").split("\0").filter(Boolean);
const serving = args.indexOf("serve");
const plane = serving >= 0 ? args[serving + 1] : undefined;
if (plane === "trainer") process.exit(0);

const portFlag = args.findIndex((a) => a === "--port" || a.startsWith("--port="));
const port = portFlag < 0 ? (process.env.SWITCHYARD_PORT ?? "8787") : args[portFlag].includes("=") ? args[portFlag].split("=")[1] : args[portFlag + 1];
const path = plane === undefined ? "/health" : "/healthz";
try {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(4000) });
  process.exit(response.ok ? 0 : 1);
} catch {
  process.exit(1);
}
