/**
 * Child process for the crash test: uploads documents in the background mode with a slow embedder,
 * printing "ACK <id>" once each upload is acknowledged and "EMBED" per embedded batch, until killed.
 */
import { join } from "node:path";
import { openDatabase } from "../../services/store/db.ts";
import { createKnowledgeBase } from "../../services/retrieval/knowledge-base.ts";
import { hashingEmbedder } from "./helpers.ts";

const [dataDir, countArg] = process.argv.slice(2);
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
      await new Promise((r) => setTimeout(r, 20));
      process.stdout.write("EMBED\n");
      return base.embed(texts);
    },
  },
});
for (let d = 0; d < Number(countArg); d++) {
  const text = Array.from({ length: 40 }, (_, i) => `Document ${d} paragraph ${i} talks about topic${(d * 40 + i) % 97}.`).join("\n\n");
  const { document } = await kb.upload(d % 2 ? "acme" : "globex", { bytes: new TextEncoder().encode(text), fileName: `doc${d}.txt` });
  process.stdout.write(`ACK ${document.id}\n`);
}
await kb.idle();
process.stdout.write("DONE\n");
