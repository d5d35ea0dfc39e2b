import type { IngestPolicy } from "../ports/knowledge.ts";
import type { KnowledgeBase } from "../services/retrieval/index.ts";
import type { IngestTarget } from "./ingest-run.ts";

/** Ingests into the knowledge base in this process (no server holds the data dir), under the tenant's policy. */
export function directTarget(kb: KnowledgeBase, tenant: string, policy: IngestPolicy): IngestTarget {
  return {
    async upload({ bytes, name }) {
      const { document, created } = await kb.upload(tenant, { bytes, fileName: name, title: name }, policy);
      return { id: document.id, created };
    },
    async state(id) {
      return kb.get(tenant, id);
    },
    wait: () => Promise.race([kb.idle(), new Promise<void>((r) => setTimeout(r, 200))]),
  };
}
