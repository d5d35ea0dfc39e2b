/**
 * kill -9 of the real server during document ingestion and adapter uploads, at synchronised points
 * (ingestion seen in progress through the API; an upload acknowledged), then a restart on the same
 * data dir: every acknowledged object is present and ready, background ingestion resumes, the hnsw
 * index on disk holds exactly the chunk ids in SQLite, and no temp files are left behind.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import hnswlib from "hnswlib-node";
import { afterAll, describe, expect, it } from "vitest";
import { childTenant, freshDataDir, removeDataDir, spawnServer, type ServerChild } from "../helpers/server-child.ts";
import { adapterForm, adapterZip } from "./fixtures.ts";

/**
 * int8 USE Lite: the same pipeline, ingesting about 4x faster, so the file stays quick. No rate limit: the polls
 * below would reach it within a second, and a minute of 429s on a loaded machine outlasted the ingestion they watch.
 */
const ENV = { SWITCHYARD_EMBEDDING_INT8: "1", SWITCHYARD_REQUESTS_PER_MINUTE: "0" };

const dirs: string[] = [];
const figures = { kills: 0, restarts: 0, documentsChecked: 0, adaptersChecked: 0 };

const running = new Set<ServerChild>();

async function start(dataDir: string): Promise<ServerChild> {
  const s = await spawnServer({ dataDir, env: ENV });
  running.add(s);
  return s;
}

afterAll(async () => {
  // Servers a failed test left running.
  for (const s of running) if (s.alive()) await s.kill9();
  console.log(
    [
      "kill -9 and restart",
      `kills survived       ${figures.kills}`,
      `restarts             ${figures.restarts}`,
      `documents checked    ${figures.documentsChecked}`,
      `adapters checked     ${figures.adaptersChecked}`,
    ].join("\n"),
  );
  for (const d of dirs) removeDataDir(d);
});

async function restart(dataDir: string): Promise<ServerChild> {
  figures.restarts++;
  return start(dataDir);
}

async function kill(s: ServerChild): Promise<void> {
  await s.kill9();
  figures.kills++;
}

/** Files anywhere under `dir` whose names mark them as temporary. */
function tempFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (/\.tmp|~$|\.partial$/.test(name)) out.push(path);
    if (statSync(path).isDirectory()) out.push(...tempFiles(path));
  }
  return out;
}

function readDb<T>(dataDir: string, read: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, "switchyard.db"));
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** Labels stored in the tenant's hnsw file, read with hnswlib itself. */
function indexLabels(dataDir: string, tenantId: string): number[] {
  const path = join(dataDir, "indexes", `${encodeURIComponent(tenantId)}.hnsw`);
  const { dimension } = JSON.parse(readFileSync(`${path}.json`, "utf8")) as { dimension: number };
  const index = new hnswlib.HierarchicalNSW("cosine", dimension);
  index.readIndexSync(path);
  return index.getIdsList().sort((a, b) => a - b);
}

/**
 * Over the 256 KB inline limit, so it is ingested in the background; padded with blank space so its
 * ~200 small chunks take several embedding batches (time to see it in progress), not minutes.
 */
function longDocument(seed: number): string {
  const pad = `\n\n${" ".repeat(500)}\n\n`;
  return Array.from({ length: 600 }, (_, i) => `Manual ${seed} section ${i}: pump${i % 89} valve${(i * 7) % 97} pressure ${i * seed}.`).join(pad);
}

type Doc = { id: string; status: string; progress: number; chunk_count: number };

async function getDoc(s: ServerChild, key: string, id: string): Promise<Doc> {
  const res = await s.call("GET", `/v1/knowledge/documents/${id}`, { key });
  if (res.status !== 200) throw new Error(`GET document ${id}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Polls the documents until one is seen in progress (some batches embedded, not all); ingestion takes them in order. */
async function untilIngesting(s: ServerChild, key: string, ids: string[]): Promise<Doc> {
  for (;;) {
    const docs = await Promise.all(ids.map((id) => getDoc(s, key, id)));
    const busy = docs.find((doc) => doc.status === "processing" && doc.progress > 0);
    if (busy) return busy;
    if (docs.every((doc) => doc.status === "ready" || doc.status === "failed")) throw new Error(`ingestion finished (${docs.map((d) => d.status).join(", ")}) before it could be interrupted`);
    await new Promise((r) => setImmediate(r));
  }
}

async function untilSettled(s: ServerChild, key: string): Promise<Doc[]> {
  for (;;) {
    const list = (await (await s.call("GET", "/v1/knowledge/documents", { key })).json()).data as Doc[];
    if (list.every((d) => d.status === "ready" || d.status === "failed")) return list;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("kill -9 during document ingestion", () => {
  it("acknowledged documents survive two crashes mid-ingestion, resume, and the index matches SQLite", async () => {
    const dataDir = freshDataDir();
    dirs.push(dataDir);
    let s = await start(dataDir);
    const { tenantId, key } = await childTenant(s, "crash-docs");
    expect((await s.call("PATCH", "/v1/tenant", { key, json: { chunkSize: 32, chunkOverlap: 0 } })).status).toBe(200);
    const acked: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await s.call("POST", "/v1/knowledge/documents", { key, json: { title: `small ${i}`, text: `Small note ${i} about gaskets and seals.` } });
      expect(res.status).toBe(201);
      acked.push((await res.json()).id);
    }
    const big: string[] = [];
    for (const seed of [1, 2]) {
      const res = await s.call("POST", "/v1/knowledge/documents", { key, json: { title: `manual ${seed}`, text: longDocument(seed) } });
      expect(res.status).toBe(202);
      big.push((await res.json()).id);
    }
    acked.push(...big);

    // First crash: the first manual is being embedded.
    const seen = await untilIngesting(s, key, [big[0]!]);
    expect(seen.progress).toBeLessThan(1);
    await kill(s);
    const unfinished = readDb(dataDir, (db) => db.prepare("SELECT id FROM documents WHERE status IN ('queued', 'processing')").pluck().all() as string[]);
    expect(unfinished.sort()).toEqual([...big].sort());

    // Second crash: the restarted server has resumed them (the first may finish between two polls).
    s = await restart(dataDir);
    await untilIngesting(s, key, big);
    await kill(s);

    s = await restart(dataDir);
    const docs = await untilSettled(s, key);
    expect(docs.map((d) => d.id).sort()).toEqual([...acked].sort());
    for (const d of docs) expect(d, d.id).toMatchObject({ status: "ready", progress: 1 });
    expect(docs.every((d) => d.chunk_count > 0)).toBe(true);
    figures.documentsChecked += docs.length;
    const hits = await (await s.call("POST", "/v1/knowledge/search", { key, json: { query: "pressure 1100", k: 3, mode: "bm25" } })).json();
    expect(hits.data[0].document_id).toBe(big[1]);
    await s.stop();

    const chunkIds = readDb(dataDir, (db) => db.prepare("SELECT id FROM chunks WHERE tenant_id = ? ORDER BY id").pluck().all(tenantId) as number[]);
    expect(chunkIds.length).toBe(docs.reduce((n, d) => n + d.chunk_count, 0));
    expect(indexLabels(dataDir, tenantId)).toEqual(chunkIds);
    expect(readdirSync(join(dataDir, "documents"))).toEqual([]);
    expect(tempFiles(dataDir)).toEqual([]);
  }, 180_000);
});

describe("kill -9 during adapter uploads", () => {
  it("killed right after an upload is acknowledged: acknowledged adapters are ready and usable, no half-written ones", async () => {
    const dataDir = freshDataDir();
    dirs.push(dataDir);
    let s = await start(dataDir);
    const { key } = await childTenant(s, "crash-adapters");
    const first = await s.call("POST", "/v1/adapters", { key, body: adapterForm("steady", adapterZip(21)) });
    expect(first.status).toBe(201);
    const acked = [(await first.json()).id as string];

    // Six uploads in flight; the first acknowledgement pulls the trigger while the others are mid-way.
    let killing: Promise<void> | undefined;
    const uploads = Array.from({ length: 6 }, (_, i) =>
      s.call("POST", "/v1/adapters", { key, body: adapterForm(`inflight-${i}`, adapterZip(30 + i)) }).then(async (res) => {
        if (res.status !== 201) throw new Error(`upload answered ${res.status}`);
        const body = (await res.json()) as { id: string };
        acked.push(body.id);
        killing ??= kill(s);
        return body.id;
      }),
    );
    const settled = await Promise.allSettled(uploads);
    await killing;
    expect(settled.filter((r) => r.status === "fulfilled").length).toBeGreaterThan(0);

    s = await restart(dataDir);
    const listed = ((await (await s.call("GET", "/v1/adapters", { key })).json()).data as Array<{ id: string; name: string; status: string }>);
    const listedIds = listed.map((a) => a.id);
    for (const id of acked) expect(listedIds, `acknowledged ${id}`).toContain(id);
    for (const a of listed) {
      expect(a.status).toBe("ready");
      const chat = await s.call("POST", "/v1/chat/completions", { key, json: { model: `stories260k:${a.name}`, messages: [{ role: "user", content: "Once" }], max_tokens: 2 } });
      expect(chat.status, a.name).toBe(200);
    }
    figures.adaptersChecked += listed.length;
    await s.stop();

    const rows = readDb(dataDir, (db) => db.prepare("SELECT id FROM adapters WHERE status = 'ready' ORDER BY id").pluck().all() as string[]);
    expect(rows).toEqual([...listedIds].sort());
    expect(readdirSync(join(dataDir, "adapters")).sort()).toEqual(rows);
    for (const id of rows) {
      expect(existsSync(join(dataDir, "adapters", id, "adapter_config.json"))).toBe(true);
      expect(existsSync(join(dataDir, "adapters", id, "adapter_model.safetensors"))).toBe(true);
    }
    expect(tempFiles(dataDir)).toEqual([]);
  }, 120_000);
});
