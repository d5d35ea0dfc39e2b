/**
 * The Trainer, AdapterCatalog and Files ports' contracts against their HTTP clients, talking to one
 * real control node (`switchyard serve trainer --port 0`) on loopback: SQLite, the adapter blobs and
 * the model's tokenizer for file validation. The node runs no worker loop here (SWITCHYARD_TRAINER=off:
 * the contract's jobs must stay queued until `run`); `run` starts the trainer's worker loop
 * (hosts/node/trainer.ts) in this process over the node's data dir, as a separate trainer process
 * would, with the stand-in training loop (trainer/jobs/fake-train.ts), and stops it once the jobs are
 * done. The node's own loop is exercised by tests/hosts/node/remote-trainer.test.ts. One node for the
 * file; each test's "fresh plane" is two tenants (and, for the catalog, an adapter-name prefix) no test has used.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { HttpAdapterCatalog } from "../../clients/adapters.ts";
import { HttpFiles } from "../../clients/files.ts";
import { HttpTrainer } from "../../clients/trainer.ts";
import { loadConfig } from "../../hosts/node/config.ts";
import { startTrainer } from "../../hosts/node/trainer.ts";
import type { FineTuningJob } from "../../ports/trainer.ts";
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import { findModel } from "../helpers/model-path.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../helpers/plane-node.ts";
import { until } from "../helpers/until.ts";
import { describeAdapterCatalogContract } from "./adapter-catalog.contract.ts";
import { describeFilesContract, trainingJsonl } from "./files.contract.ts";
import { describeTrainerContract } from "./trainer.contract.ts";

/** Above a rank-32 adapter of stories260k (160 KiB), so the contract's rank check, not the size, refuses it. */
const LIMITS = { maxBytes: 256 * 1024, maxLines: 200 };

let node: PlaneNodeChild;
beforeAll(async () => {
  node = await spawnPlaneNode("trainer", {
    SWITCHYARD_TRAINER: "off",
    SWITCHYARD_MAX_LORA_RANK: "16",
    SWITCHYARD_MAX_UPLOAD_BODY: String(LIMITS.maxBytes),
    SWITCHYARD_MAX_TRAINING_FILE_LINES: String(LIMITS.maxLines),
  });
}, 120_000);
afterAll(async () => {
  await node?.stop();
});

const client = () => ({ url: node.url, secret: NODE_SECRET });
let fresh = 0;
const tenants = (): [string, string] => (fresh++, [`acme-${fresh}`, `globex-${fresh}`]);

describeFilesContract("HTTP client of a control node", async () => ({ files: new HttpFiles(client()), tenants: tenants(), limits: LIMITS, close: async () => {} }));

describeAdapterCatalogContract("HTTP client of a control node", async () => ({
  catalog: new HttpAdapterCatalog(client()),
  scope: { tenants: tenants(), prefix: `s${fresh}-` },
  close: async () => {},
}));

describeTrainerContract("HTTP client of a control node", async () => {
  const trainer = new HttpTrainer(client());
  const files = new HttpFiles(client());
  const mine = tenants();
  const jobs = async () => (await Promise.all(mine.map((t) => trainer.list(t, { limit: 100 })))).flatMap((page) => page.data);
  const finished = (all: FineTuningJob[]) => all.every((j) => j.status === "succeeded" || j.status === "failed" || j.status === "cancelled");
  return {
    trainer,
    base: "stories260k",
    tenants: mine,
    upload: async (tenantId) => (await files.upload({ tenantId, filename: "train.jsonl", purpose: "fine-tune", bytes: new TextEncoder().encode(trainingJsonl(3)) })).id,
    // A worker loop over the node's data dir trains the queued jobs: until none is left queued or running.
    run: async () => {
      const config = loadConfig({ SWITCHYARD_DATA_DIR: node.dataDir, SWITCHYARD_MODEL: findModel("stories260k"), SWITCHYARD_MAX_LORA_RANK: "16" });
      const worker = await startTrainer(config, fakeTrain(), pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1_000, pollMs: 20 });
      try {
        expect(finished(await until(jobs, finished))).toBe(true);
      } finally {
        await worker.close();
      }
    },
    close: async () => {},
  };
});

describe("control node", () => {
  it("refuses every port call without the node secret (health stays open)", async () => {
    for (const path of ["/v1/catalog/base", "/v1/catalog/adapters?admin=1", "/v1/tenants/t/files", "/v1/tenants/t/fine-tuning/jobs"]) {
      const response = await node.call(path, { authorization: null });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: "unauthenticated" } });
      expect((await node.call(path, { authorization: "Bearer wrong-secret-0123456789" })).status).toBe(401);
    }
    expect((await node.call("/readyz", { authorization: null })).status).toBe(200);
    await expect(new HttpFiles({ url: node.url, secret: "wrong-secret-0123456789" }).list("t")).rejects.toMatchObject({ kind: "unavailable", code: "node_unauthorized" });
  });

  it("a download over the client's limit is refused as too_large, reading no more than the limit", async () => {
    const files = new HttpFiles(client());
    const file = await files.upload({ tenantId: "limit-1", filename: "t.jsonl", purpose: "fine-tune", bytes: new TextEncoder().encode(trainingJsonl(20)) });
    const small = new HttpFiles({ ...client(), maxDownloadBytes: 100 });
    await expect(small.content("limit-1", file.id)).rejects.toMatchObject({ kind: "too_large", code: "download_too_large" });
    const stream = await files.contentStream("limit-1", file.id);
    expect(new TextDecoder().decode(await new Response(stream).arrayBuffer())).toBe(trainingJsonl(20));
  });
});
