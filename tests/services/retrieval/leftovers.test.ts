/** What a crash leaves in the data dir is swept when the platform starts (real platform over HTTP). */
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { openDatabase } from "../../../services/store/db.ts";
import { documents } from "../../../services/store/schema.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

let p: TestPlatform | undefined;
afterAll(async () => {
  await p?.stop();
});

it("removes index temp files and orphaned uploads at start, and keeps the uploads still queued", async () => {
  p = await startTestPlatform();
  const { tenantId, key } = await createTenantWithKey(p);
  const ready = await (await p.call("POST", "/v1/knowledge/documents", { key, json: { title: "Refunds", text: "Refunds are paid within 14 days." } })).json();
  expect(ready.status).toBe("ready");
  await p.platform.close();

  const indexes = join(p.dataDir, "indexes");
  const uploads = join(p.dataDir, "documents");
  const index = `${encodeURIComponent(tenantId)}.hnsw`;
  // A crashed index save, an upload that crashed before its row, one that crashed after its commit...
  writeFileSync(join(indexes, `${index}.tmp-4242`), "partial index");
  writeFileSync(join(indexes, `${index}.tmp-4242.json`), "{}");
  writeFileSync(join(uploads, "doc_orphan"), "no row points here");
  writeFileSync(join(uploads, ready.id), "already ingested");
  // ...and an upload still queued, which must survive the sweep and be ingested.
  const store = openDatabase(join(p.dataDir, "switchyard.db"));
  store.db.insert(documents).values({ id: "doc_queued", tenantId, title: "Shipping", format: "text", sha256: "s", sizeBytes: 28, status: "queued", chunkSize: 256, chunkOverlap: 32 }).run();
  store.close();
  writeFileSync(join(uploads, "doc_queued"), "Parcels ship within 2 days.");

  await p.restart();
  expect(readdirSync(indexes).sort()).toEqual([index, `${index}.json`]);
  expect(existsSync(join(uploads, "doc_orphan"))).toBe(false);
  expect(existsSync(join(uploads, ready.id))).toBe(false);

  let queued = await (await p.call("GET", "/v1/knowledge/documents/doc_queued", { key })).json();
  while (queued.status === "queued" || queued.status === "processing") {
    await new Promise((resolve) => setTimeout(resolve, 20));
    queued = await (await p.call("GET", "/v1/knowledge/documents/doc_queued", { key })).json();
  }
  expect(queued).toMatchObject({ status: "ready", chunk_count: 1, error: null });
  expect(readdirSync(uploads)).toEqual([]);
  const search = await (await p.call("POST", "/v1/knowledge/search", { key, json: { query: "how fast do parcels ship", k: 2, mode: "bm25" } })).json();
  expect(search.data.map((h: { document_id: string }) => h.document_id)).toEqual(["doc_queued"]);
});
