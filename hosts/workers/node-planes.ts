import { HttpAdapterCatalog } from "../../clients/adapters.ts";
import { HttpFiles } from "../../clients/files.ts";
import { FleetInference } from "../../clients/fleet.ts";
import { HttpInference } from "../../clients/inference.ts";
import { HttpKnowledge } from "../../clients/knowledge.ts";
import { KnowledgePartitions } from "../../clients/knowledge-partitions.ts";
import type { NodeClientOptions } from "../../clients/node-call.ts";
import { HttpTrainer } from "../../clients/trainer.ts";
import type { Planes } from "../../ports/index.ts";
import type { WorkerConfig } from "./config.ts";

type NodePlanes = Pick<Planes, "inference" | "knowledge" | "adapters" | "files" | "trainer">;

/**
 * The planes the Worker reaches over HTTP: one inference node's client, or a fleet of them (rendezvous
 * placement by adapter; its health checks run when a call finds them stale, since no timer outlives a
 * request here); the retrieval node's client, or tenant partitions over several; and the control node's three (adapter catalog, files,
 * fine-tuning jobs), whose adapters the inference nodes read from the data dir they share with it.
 * A plane without a URL is left out, so its routes answer 503 plane_unavailable.
 */
export function nodePlanes(config: WorkerConfig): NodePlanes {
  const secret = config.nodeSecret ?? "";
  const client = (url: string): NodeClientOptions => ({ url, secret, timeoutMs: config.nodeTimeoutMs });
  const control = config.trainerUrl === undefined ? undefined : client(config.trainerUrl);
  return {
    inference: inferenceClient(config, secret),
    knowledge: knowledgeClient(config, secret),
    adapters: control && new HttpAdapterCatalog(control),
    files: control && new HttpFiles(control),
    trainer: control && new HttpTrainer(control),
  };
}

function inferenceClient(config: WorkerConfig, secret: string): HttpInference | FleetInference | undefined {
  const urls = config.inferenceUrls;
  if (urls.length === 0) return undefined;
  if (urls.length === 1) return new HttpInference({ url: urls[0]!, secret, timeoutMs: config.nodeTimeoutMs });
  return new FleetInference({ nodes: urls, secret, timeoutMs: config.nodeTimeoutMs });
}

function knowledgeClient(config: WorkerConfig, secret: string): HttpKnowledge | KnowledgePartitions | undefined {
  const urls = config.retrievalUrls;
  if (urls.length === 0) return undefined;
  if (urls.length === 1) return new HttpKnowledge({ url: urls[0]!, secret, timeoutMs: config.nodeTimeoutMs });
  return new KnowledgePartitions({ nodes: urls, secret, timeoutMs: config.nodeTimeoutMs });
}
