/**
 * Child process for the crash test: uploads documents in the background mode, printing "ACK <id>" once
 * each upload is acknowledged. The embedder embeds `pauseAt - 1` batches, then prints "PAUSED" and never
 * returns, so the parent kills the process at a known point: in the middle of a document.
 */
import { join } from "node:path";
import { openDatabase } from "../../../services/store/db.ts";
import { createKnowledgeBase } from "../../../services/retrieval/knowledge-base.ts";
import { hashingEmbedder, policyOf } from "./helpers.ts";

const [dataDir, countArg, pauseAtArg] = process.argv.slice(2);
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
for (let d = 0; d < Number(countArg); d++) {
  const text = Array.from({ length: 40 }, (_, i) => `Document ${d} paragraph ${i} talks about topic${(d * 40 + i) % 97}.`).join("\n\n");
  const tenant = d % 2 ? "acme" : "globex";
  const { document } = await kb.upload(tenant, { bytes: new TextEncoder().encode(text), fileName: `doc${d}.txt` }, policyOf(store, tenant));
  process.stdout.write(`ACK ${document.id}\n`);
}
await kb.idle();
process.stdout.write("DONE\n");
