/**
 * Child process for the crash test: uploads documents in the background mode, printing "ACK <id>" once
 * each upload is acknowledged. The embedder embeds `pauseAt - 1` batches, then prints "PAUSED" and never
 * returns, so the parent kills the process at a known point: in the middle of a document.
 * With a fourth argument `batch`, each tenant's documents go in one `uploadBatch` call.
 */
import { join } from "node:path";
import { openDatabase } from "../../../services/store/db.ts";
import { createKnowledgeBase } from "../../../services/retrieval/knowledge-base.ts";
import { hashingEmbedder, policyOf } from "./helpers.ts";

const [dataDir, countArg, pauseAtArg, mode] = process.argv.slice(2);
let embeds = 0;
const store = openDatabase(join(dataDir, "switchyard.db"));
const base = hashingEmbedder();
const kb = await createKnowledgeBase({
  db: store.db,
  sqlite: store.sqlite,
  dataDir,
  inlineBytes: 0,
  embedBatchSize: 4,
  embedder: {
    id: base.id,
    dimension: base.dimension,
    async embed(texts) {
      if (++embeds === Number(pauseAtArg)) {
        setInterval(() => {}, 60_000); // keeps the process alive while it waits to be killed
        process.stdout.write("PAUSED\n");
        await new Promise(() => {});
      }
      return base.embed(texts);
    },
  },
});
const uploads = Array.from({ length: Number(countArg) }, (_, d) => {
  const text = Array.from({ length: 40 }, (_, i) => `Document ${d} paragraph ${i} talks about topic${(d * 40 + i) % 97}.`).join("\n\n");
  return { tenant: d % 2 ? "acme" : "globex", upload: { bytes: new TextEncoder().encode(text), fileName: `doc${d}.txt` } };
});
if (mode === "batch") {
  for (const tenant of ["globex", "acme"]) {
    const items = await kb.uploadBatch(tenant, uploads.filter((u) => u.tenant === tenant).map((u) => u.upload), policyOf(store, tenant));
    for (const item of items) process.stdout.write(item.ok ? `ACK ${item.document.id}\n` : `REFUSED ${item.error.message}\n`);
  }
} else {
  for (const { tenant, upload } of uploads) {
    const { document } = await kb.upload(tenant, upload, policyOf(store, tenant));
    process.stdout.write(`ACK ${document.id}\n`);
  }
}
await kb.idle();
process.stdout.write("DONE\n");
