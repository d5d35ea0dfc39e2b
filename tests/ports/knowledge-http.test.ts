/**
 * The Knowledge port's contract against the HTTP client, talking to a real `switchyard serve retrieval`
 * on loopback (SQLite, hnswlib, USE Lite). One node for the suite; each test's "fresh plane" is two
 * tenants no test has used, which the contract cannot tell from a new node.
 */
import { afterAll, beforeAll } from "vitest";
import { HttpKnowledge } from "../../clients/knowledge.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../helpers/plane-node.ts";
import { knowledgeContract } from "./knowledge.contract.ts";

let node: PlaneNodeChild;
beforeAll(async () => {
  node = await spawnPlaneNode("retrieval");
}, 120_000);
afterAll(async () => {
  await node?.stop();
});

let fresh = 0;
knowledgeContract("HTTP client of a retrieval node", async () => {
  fresh++;
  return { knowledge: new HttpKnowledge({ url: node.url, secret: NODE_SECRET }), tenants: [`acme-${fresh}`, `globex-${fresh}`], close: async () => {} };
});
