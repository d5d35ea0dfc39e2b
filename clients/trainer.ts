/**
 * The Trainer port over HTTP: the control node (`switchyard serve trainer --port N`), which keeps the
 * job rows and runs them in its worker loop. Reads are retried on a node that did nothing; submit and
 * cancel are sent once (a retried submit could queue a second job; a retried cancel would answer
 * job_not_cancellable for the cancel the first attempt did).
 */
import type { FineTuningCheckpoint, FineTuningEvent, FineTuningJob, FineTuningJobRequest, FineTuningMetrics, Page, PageOf, Trainer } from "../ports/trainer.ts";
import { NodeClient, type NodeClientOptions } from "./node-call.ts";
import { jobPath, jobsPath } from "./wire/routes.ts";

const JSON_HEADERS = { "content-type": "application/json" };

/** `?limit=&after=` of a page, or "". */
export function pageQuery(page: Page = {}): string {
  const params = new URLSearchParams();
  if (page.limit !== undefined) params.set("limit", String(page.limit));
  if (page.after !== undefined) params.set("after", page.after);
  return params.size > 0 ? `?${params}` : "";
}

export class HttpTrainer implements Trainer {
  private readonly node: NodeClient;

  constructor(options: NodeClientOptions) {
    this.node = new NodeClient(options);
  }

  submit(request: FineTuningJobRequest): Promise<FineTuningJob> {
    const { tenantId, ...body } = request;
    return this.node.json({ method: "POST", path: jobsPath(tenantId), body: JSON.stringify(body), headers: JSON_HEADERS, idempotent: false });
  }

  get(tenantId: string, jobId: string): Promise<FineTuningJob> {
    return this.node.json({ method: "GET", path: jobPath(tenantId, jobId), idempotent: true });
  }

  list(tenantId: string, page?: Page): Promise<PageOf<FineTuningJob>> {
    return this.node.json({ method: "GET", path: `${jobsPath(tenantId)}${pageQuery(page)}`, idempotent: true });
  }

  cancel(tenantId: string, jobId: string): Promise<FineTuningJob> {
    return this.node.json({ method: "POST", path: `${jobPath(tenantId, jobId)}/cancel`, idempotent: false });
  }

  events(tenantId: string, jobId: string, page?: Page): Promise<PageOf<FineTuningEvent>> {
    return this.node.json({ method: "GET", path: `${jobPath(tenantId, jobId)}/events${pageQuery(page)}`, idempotent: true });
  }

  checkpoints(tenantId: string, jobId: string, page?: Page): Promise<PageOf<FineTuningCheckpoint>> {
    return this.node.json({ method: "GET", path: `${jobPath(tenantId, jobId)}/checkpoints${pageQuery(page)}`, idempotent: true });
  }

  metrics(tenantId: string, jobId: string): Promise<FineTuningMetrics> {
    return this.node.json({ method: "GET", path: `${jobPath(tenantId, jobId)}/metrics`, idempotent: true });
  }
}
