/**
 * The Workers project's plane nodes, on the Node side: one `switchyard serve inference` and one
 * `switchyard serve retrieval` (stories260k, the test node secret) on loopback for the whole project,
 * their URLs handed to the pool (vitest.config.ts reads them with `inject` into the Worker's vars).
 */
import type { TestProject } from "vitest/node";
import { NODE_SECRET, spawnPlaneNode } from "../../helpers/plane-node.ts";

declare module "vitest" {
  export interface ProvidedContext {
    inferenceUrl: string;
    retrievalUrl: string;
    nodeSecret: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [inference, retrieval] = await Promise.all([spawnPlaneNode("inference"), spawnPlaneNode("retrieval")]);
  project.provide("inferenceUrl", inference.url);
  project.provide("retrievalUrl", retrieval.url);
  project.provide("nodeSecret", NODE_SECRET);
  return async () => {
    await Promise.all([inference.stop(), retrieval.stop()]);
  };
}
