/**
 * The Workers project's plane nodes, on the Node side, one set for the whole project (stories260k, the
 * test node secret, loopback): `serve inference`, `serve retrieval` and the control node `serve trainer`
 * (adapters, files, fine-tuning; without its worker loop: a job stays queued, listed, never trained). The control
 * and inference nodes share one data dir (the inference node reads the adapters the control node
 * catalogs), migrated here first so the two never race to create its tables. Their URLs go to the pool
 * (vitest.config.ts injects them as the Worker's vars), with a random LoRA for stories260k that the tests
 * upload through the Worker.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { openDatabase } from "../../../services/store/db.ts";
import { STORIES } from "../../helpers/adapters.ts";
import { NODE_SECRET, spawnPlaneNode } from "../../helpers/plane-node.ts";

declare module "vitest" {
  export interface ProvidedContext {
    inferenceUrl: string;
    retrievalUrl: string;
    trainerUrl: string;
    nodeSecret: string;
    /** A random stories260k LoRA's adapter_config.json and adapter_model.safetensors, base64. */
    adapterFiles: { config: string; model: string };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const shared = mkdtempSync(join(tmpdir(), "switchyard-workers-nodes-"));
  openDatabase(join(shared, "switchyard.db")).close();
  const [inference, retrieval, trainer] = await Promise.all([
    spawnPlaneNode("inference", {}, shared),
    spawnPlaneNode("retrieval"),
    spawnPlaneNode("trainer", { SWITCHYARD_TRAINER: "off" }, shared),
  ]);
  const { files } = randomPeftAdapter(STORIES, { rank: 4, amplitude: 0.5, seed: 17 });
  project.provide("inferenceUrl", inference.url);
  project.provide("retrievalUrl", retrieval.url);
  project.provide("trainerUrl", trainer.url);
  project.provide("nodeSecret", NODE_SECRET);
  project.provide("adapterFiles", { config: Buffer.from(files.config).toString("base64"), model: Buffer.from(files.model).toString("base64") });
  return async () => {
    await Promise.all([inference.stop(), retrieval.stop(), trainer.stop()]);
    rmSync(shared, { recursive: true, force: true });
  };
}
