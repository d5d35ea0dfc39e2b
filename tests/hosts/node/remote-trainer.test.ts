/**
 * A Node edge started with --trainer-url: a real control node (`switchyard serve trainer --port 0`,
 * its worker loop on, with the stand-in training loop SWITCHYARD_TRAINER_FAKE_TRAIN=1) holds the files,
 * the jobs and the adapter catalog, and the edge reaches them only through the HTTP clients. The two
 * share one data dir (the node started first, then the edge, one at a time), so the edge's in-process
 * engine serves the adapter the node's loop published. The whole OpenAI flow goes through the edge:
 * upload (and the file's bytes back), fine-tune, the job's events, the adapter in /v1/models, its download
 * (streamed through the edge), and a chat with it.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trainingJsonl } from "../../ports/files.contract.ts";
import { findModel } from "../../helpers/model-path.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../../helpers/plane-node.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { until } from "../../helpers/until.ts";

describe("a Node edge with a control node (--trainer-url)", () => {
  let node: PlaneNodeChild;
  let edge: TestPlatform;
  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switchyard-control-"));
    node = await spawnPlaneNode("trainer", { SWITCHYARD_TRAINER_FAKE_TRAIN: "1", SWITCHYARD_TRAINER_HEARTBEAT_MS: "50" }, dataDir);
    // SWITCHYARD_TRAINER on: the edge still starts no trainer child, since the control node runs the jobs.
    edge = await startTestPlatform({ SWITCHYARD_MODEL: findModel("stories260k"), SWITCHYARD_TRAINER: "on", SWITCHYARD_TRAINER_URL: node.url, SWITCHYARD_NODE_SECRET: NODE_SECRET }, { dataDir });
  }, 180_000);
  afterAll(async () => {
    await node?.stop();
    await edge?.stop();
  });

  it("uploads, fine-tunes on the node's loop, lists, downloads and chats with the adapter, all through the edge", async () => {
    expect(edge.platform.trainer).toBeUndefined();
    const { key, tenantId } = await createTenantWithKey(edge);
    const form = new FormData();
    form.set("purpose", "fine-tune");
    form.set("file", new File([trainingJsonl(3)], "train.jsonl"));
    const file = await (await edge.call("POST", "/v1/files", { key, body: form })).json();
    expect(file).toMatchObject({ object: "file", purpose: "fine-tune" });
    // The file lives on the control node, under the edge's tenant id.
    const held = (await (await node.call(`/v1/tenants/${encodeURIComponent(tenantId)}/files`)).json()) as { data: { id: string }[] };
    expect(held.data.map((f) => f.id)).toEqual([file.id]);
    // Its bytes stream back through the edge unchanged.
    expect(await (await edge.call("GET", `/v1/files/${file.id}/content`, { key })).text()).toBe(trainingJsonl(3));

    const created = await edge.call("POST", "/v1/fine_tuning/jobs", { key, json: { model: "stories260k", training_file: file.id, suffix: "remote" } });
    expect(created.status, await created.clone().text()).toBe(200);
    const job = await created.json();
    const done = await until(async () => (await edge.call("GET", `/v1/fine_tuning/jobs/${job.id}`, { key })).json(), (j) => j.status === "succeeded" || j.status === "failed", 30_000);
    expect(done).toMatchObject({ status: "succeeded", fine_tuned_model: "remote@1" });
    const events = await (await edge.call("GET", `/v1/fine_tuning/jobs/${job.id}/events`, { key })).json();
    expect(events.data[0].message).toMatch(/successfully completed: remote@1/);

    const models = await (await edge.call("GET", "/v1/models", { key })).json();
    const adapter = models.data.find((m: { id: string }) => m.id.includes("remote"));
    expect(adapter, JSON.stringify(models.data)).toBeDefined();
    const listed = await (await edge.call("GET", "/v1/adapters", { key })).json();
    const [info] = listed.data;
    expect(info).toMatchObject({ name: "remote", version: 1 });
    const archive = await edge.call("GET", `/v1/adapters/${info.id}/content?format=zip`, { key });
    expect(archive.status).toBe(200);
    const zip = new Uint8Array(await archive.arrayBuffer());
    expect([...zip.subarray(0, 2)]).toEqual([0x50, 0x4b]); // "PK"

    const chat = await edge.call("POST", "/v1/chat/completions", { key, json: { model: "remote@1", max_tokens: 8, temperature: 0, messages: [{ role: "user", content: "Hi" }] } });
    expect(chat.status, await chat.clone().text()).toBe(200);
    expect((await chat.json()).model).toBe("remote@1");
  });

  it("answers another tenant's job and file as not_found, through the node", async () => {
    const { key } = await createTenantWithKey(edge);
    expect((await edge.call("GET", "/v1/fine_tuning/jobs/ftjob_nope", { key })).status).toBe(404);
    expect((await edge.call("GET", "/v1/files/file_nope", { key })).status).toBe(404);
  });
});
