/**
 * A Node edge over two real retrieval node processes (`--retrieval-url A,B`): each tenant's documents
 * land on its rendezvous node and only there, its list, search and delete go to the same node, and a
 * node that is down answers 503 for its own tenants only (no spill: their documents live there).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rendezvousOrder } from "../../../clients/rendezvous.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../../helpers/plane-node.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

interface Tenant {
  id: string;
  key: string;
  node: PlaneNodeChild;
  docId?: string;
}

const SEARCH = { query: "lighthouse keeper", k: 3, mode: "bm25" };

async function nodeDocuments(node: PlaneNodeChild, tenantId: string): Promise<string[]> {
  const response = await node.call(`/v1/tenants/${encodeURIComponent(tenantId)}/documents`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { data: { id: string }[] }).data.map((d) => d.id);
}

describe("retrieval nodes partitioned by tenant", () => {
  let nodes: PlaneNodeChild[];
  let edge: TestPlatform;
  const tenants: Tenant[] = [];
  beforeAll(async () => {
    nodes = await Promise.all([spawnPlaneNode("retrieval"), spawnPlaneNode("retrieval")]);
    const urls = nodes.map((n) => n.url);
    // No engine: port 9 has no listener; the knowledge routes never call inference.
    edge = await startTestPlatform({ SWITCHYARD_RETRIEVAL_URL: urls.join(","), SWITCHYARD_INFERENCE_URL: "http://127.0.0.1:9", SWITCHYARD_NODE_SECRET: NODE_SECRET, SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
    // Tenant ids are the edge's: make tenants until each node owns two.
    for (let i = 0; i < 40 && nodes.some((n) => tenants.filter((t) => t.node === n).length < 2); i++) {
      const { tenantId, key } = await createTenantWithKey(edge, `tenant-${i}`);
      const owner = rendezvousOrder(urls, tenantId, (u) => u)[0]!;
      const node = nodes[urls.indexOf(owner)]!;
      if (tenants.filter((t) => t.node === node).length < 2) tenants.push({ id: tenantId, key, node });
    }
  }, 180_000);
  afterAll(async () => {
    await edge?.stop();
    await Promise.all((nodes ?? []).map((n) => n.stop()));
  });

  it("stores each tenant's documents on its own node only, and lists, searches and deletes them there", async () => {
    expect(tenants).toHaveLength(4);
    for (const t of tenants) {
      const uploaded = await edge.call("POST", "/v1/knowledge/documents", { key: t.key, json: { title: `Notes of ${t.id}`, text: `The lighthouse keeper of ${t.id} kept a log.` } });
      expect(uploaded.status, await uploaded.clone().text()).toBe(201);
      t.docId = ((await uploaded.json()) as { id: string }).id;
    }
    for (const t of tenants) {
      let status = "";
      while (status !== "ready") {
        status = (await (await edge.call("GET", `/v1/knowledge/documents/${t.docId}`, { key: t.key })).json()).status;
        expect(status).not.toBe("failed");
        if (status !== "ready") await new Promise((r) => setTimeout(r, 25));
      }
      const other = nodes.find((n) => n !== t.node)!;
      expect({ own: await nodeDocuments(t.node, t.id), other: await nodeDocuments(other, t.id) }).toEqual({ own: [t.docId], other: [] });
      const listed = await (await edge.call("GET", "/v1/knowledge/documents", { key: t.key })).json();
      expect(listed.data.map((d: { id: string }) => d.id)).toEqual([t.docId]);
      const hits = await (await edge.call("POST", "/v1/knowledge/search", { key: t.key, json: SEARCH })).json();
      expect(hits.data.map((h: { document_id: string }) => h.document_id)).toEqual([t.docId]);
    }
    const gone = tenants[0]!;
    const deleted = await edge.call("DELETE", `/v1/knowledge/documents/${gone.docId}`, { key: gone.key });
    expect(await deleted.json()).toMatchObject({ id: gone.docId, deleted: true });
    expect(await nodeDocuments(gone.node, gone.id)).toEqual([]);
    expect((await (await edge.call("GET", "/v1/knowledge/documents", { key: gone.key })).json()).data).toEqual([]);
  });

  it("answers 503 for the tenants of a node that is down, and serves the other node's tenants as before", async () => {
    const down = nodes[1]!;
    await down.kill("SIGKILL");
    for (const t of tenants.slice(1)) {
      const listed = await edge.call("GET", "/v1/knowledge/documents", { key: t.key });
      const searched = await edge.call("POST", "/v1/knowledge/search", { key: t.key, json: SEARCH });
      if (t.node === down) {
        expect([listed.status, searched.status]).toEqual([503, 503]);
        expect((await listed.json()).error.code).toBe("node_unreachable");
      } else {
        expect([listed.status, searched.status]).toEqual([200, 200]);
        expect((await searched.json()).data.map((h: { document_id: string }) => h.document_id)).toEqual([t.docId]);
      }
    }
  });
});
