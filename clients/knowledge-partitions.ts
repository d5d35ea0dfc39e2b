/**
 * The Knowledge port over several retrieval nodes, partitioned by tenant: a tenant's documents live on
 * its rendezvous node (clients/rendezvous.ts, the tenant id as key, each node named by its URL as
 * configured), and every call for that tenant (upload, get, list, delete, reindex, search) goes to that
 * one node, from every edge with the same node list.
 *
 * - No spill and no failover: no other node holds the tenant's documents or indexes, so when a tenant's
 *   node is down its calls fail `unavailable` (503, after HttpKnowledge's retries of idempotent calls),
 *   for that tenant alone; the other nodes' tenants are served as before.
 * - The node list is the partition map. Adding a node moves about 1/n of the tenants to it, and removing
 *   one moves its own tenants, and their documents do not move with them (nothing here copies data):
 *   grow a deployment by re-uploading the moved tenants' documents, and keep node URLs stable (a
 *   StatefulSet's per-pod DNS names, not addresses).
 */
import type { BatchItem, DocumentUpload, IngestPolicy, Knowledge, KnowledgeDocument, SearchHit, SearchRequest, UploadResult } from "../ports/knowledge.ts";
import { HttpKnowledge } from "./knowledge.ts";
import type { NodeClientOptions } from "./node-call.ts";
import { rendezvousOrder } from "./rendezvous.ts";

export interface KnowledgePartitionsOptions extends Omit<NodeClientOptions, "url"> {
  /** The retrieval nodes' base URLs (two or more; their names in the rendezvous hash). */
  nodes: readonly string[];
}

interface Partition {
  url: string;
  client: HttpKnowledge;
}

export class KnowledgePartitions implements Knowledge {
  private readonly partitions: Partition[];

  constructor(options: KnowledgePartitionsOptions) {
    const { nodes, ...client } = options;
    if (new Set(nodes).size !== nodes.length || nodes.length === 0) throw new TypeError("KnowledgePartitions needs distinct node URLs.");
    this.partitions = nodes.map((url) => ({ url, client: new HttpKnowledge({ ...client, url }) }));
  }

  /** The URL of the node that holds the tenant's documents. */
  nodeOf(tenantId: string): string {
    return this.partition(tenantId).url;
  }

  upload(tenantId: string, upload: DocumentUpload, policy: IngestPolicy): Promise<UploadResult> {
    return this.of(tenantId).upload(tenantId, upload, policy);
  }

  uploadBatch(tenantId: string, uploads: DocumentUpload[], policy: IngestPolicy): Promise<BatchItem[]> {
    return this.of(tenantId).uploadBatch(tenantId, uploads, policy);
  }

  get(tenantId: string, documentId: string): Promise<KnowledgeDocument> {
    return this.of(tenantId).get(tenantId, documentId);
  }

  list(tenantId: string, page?: { limit?: number; offset?: number }): Promise<KnowledgeDocument[]> {
    return this.of(tenantId).list(tenantId, page);
  }

  delete(tenantId: string, documentId: string): Promise<void> {
    return this.of(tenantId).delete(tenantId, documentId);
  }

  reindex(tenantId: string): Promise<number> {
    return this.of(tenantId).reindex(tenantId);
  }

  search(tenantId: string, request: SearchRequest): Promise<SearchHit[]> {
    return this.of(tenantId).search(tenantId, request);
  }

  private partition(tenantId: string): Partition {
    return rendezvousOrder(this.partitions, tenantId, (p) => p.url)[0]!;
  }

  private of(tenantId: string): HttpKnowledge {
    return this.partition(tenantId).client;
  }
}
