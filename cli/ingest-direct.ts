import type { IngestPolicy } from "../ports/knowledge.ts";
import type { KnowledgeBase } from "../services/retrieval/index.ts";
import type { IngestTarget } from "./ingest-run.ts";

/** Ingests into the knowledge base in this process (no server holds the data dir), under the tenant's policy. */
export function directTarget(kb: KnowledgeBase, tenant: string, policy: IngestPolicy): IngestTarget {
  return {
    async uploadBatch(files) {
      const items = await kb.uploadBatch(tenant, files.map(({ bytes, name }) => ({ bytes, fileName: name, title: name })), policy);
      return items.map((item) => ({ file: item.upload, entry: item.entry, ...(item.ok ? { id: item.document.id, created: item.created } : { error: item.error.message }) }));
    },
    states: (ids) => Promise.all(ids.map((id) => kb.get(tenant, id))),
    wait: () => Promise.race([kb.idle(), new Promise<void>((r) => setTimeout(r, 200))]),
  };
}
