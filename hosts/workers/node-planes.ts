import { FleetInference } from "../../clients/fleet.ts";
import { HttpInference } from "../../clients/inference.ts";
import { HttpKnowledge } from "../../clients/knowledge.ts";
import type { Planes } from "../../ports/index.ts";
import type { WorkerConfig } from "./config.ts";

/**
 * The planes the Worker reaches over HTTP: one inference node's client, or a fleet of them (rendezvous
 * placement by adapter; its health checks run when a call finds them stale, since no timer outlives a
 * request here), and the retrieval node's client. A plane without a URL is left out (503 plane_unavailable).
 */
export function nodePlanes(config: WorkerConfig): Pick<Planes, "inference" | "knowledge"> {
  const secret = config.nodeSecret ?? "";
  const client = (url: string) => ({ url, secret, timeoutMs: config.nodeTimeoutMs });
  const urls = config.inferenceUrls;
  const inference = urls.length === 0 ? undefined : urls.length === 1 ? new HttpInference(client(urls[0]!)) : new FleetInference({ nodes: urls, secret, timeoutMs: config.nodeTimeoutMs });
  return { inference, knowledge: config.retrievalUrl === undefined ? undefined : new HttpKnowledge(client(config.retrievalUrl)) };
}
