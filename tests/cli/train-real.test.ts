/**
 * One short real run through the CLI: `switchyard train` against the server with a trainer worker
 * running trainLora (the real forward + backward graph on ../shared/models/stories260k) for a few
 * steps; the progress shows the real losses, the published adapter answers chat, and it downloads
 * (GET /v1/adapters/:id/content) and uploads back as the same weights.
 */
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { trainCommand } from "../../cli/train.ts";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { trainLora } from "../../trainer/train.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

const QA = join(import.meta.dirname, "../fixtures/training/qa.jsonl");

let p: TestPlatform;
let trainer: TrainerProcess;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  key = (await createTenantWithKey(p, "cli-train-real")).key;
  trainer = await startTrainer(p.config, trainLora, pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 100 });
});
afterAll(async () => {
  await trainer?.close();
  await p?.stop();
});

function capture() {
  const out = Object.assign(new PassThrough(), { isTTY: false });
  let text = "";
  out.on("data", (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

it("trains a few real steps and prints the adapter, which chat serves", async () => {
  const stdout = capture();
  const stderr = capture();
  const code = await trainCommand([QA, "--suffix", "real", "--max-steps", "4", "--batch-size", "4", "--rank", "4", "--learning-rate", "0.01", "--seed", "1", "--url", p.url, "--key", key], {
    stdout: stdout.out,
    stderr: stderr.out,
    pollMs: 100,
  });
  expect(stderr.text()).toMatch(/^train: step 4\/4 \(100%\) \| train loss \d+\.\d{4} \| valid loss (\d+\.\d{4}|-) \| ETA /m);
  const losses = [...stderr.text().matchAll(/train: step \d+\/4 .*\| train loss (\d+\.\d{4})/g)].map((m) => Number(m[1]));
  expect(losses.length).toBe(4);
  expect(losses.every((l) => l > 0 && Number.isFinite(l))).toBe(true);
  expect(stdout.text()).toBe("real@1\n");
  expect(code).toBe(0);
  const chat = await p.call("POST", "/v1/chat/completions", { key, json: { model: "real@1", messages: [{ role: "user", content: "What is the name of the red dog?" }], max_tokens: 4 } });
  expect(chat.status).toBe(200);

  // The trained adapter downloads from the real server and uploads back as the same weights.
  const adapter = (await (await p.call("GET", "/v1/adapters", { key })).json()).data.find((a: { name: string }) => a.name === "real");
  const download = await p.call("GET", `/v1/adapters/${adapter.id}/content?format=tar.gz`, { key });
  expect(download.status).toBe(200);
  expect(download.headers.get("content-disposition")).toBe('attachment; filename="real-v1.tar.gz"');
  const bytes = new Uint8Array(await download.arrayBuffer());
  expect(download.headers.get("content-length")).toBe(String(bytes.byteLength));
  const again = await p.call("POST", "/v1/adapters?name=real-again", { key, body: bytes, headers: { "content-type": "application/gzip" } });
  expect(again.status).toBe(201);
  expect((await again.json()).sha256).toBe(adapter.sha256);
}, 120_000);
