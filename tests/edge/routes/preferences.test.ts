/**
 * /v1/preferences over the real store (SQLite, migration 0009): pairs are stored whole or refused with
 * a 400, download as OpenAI's DPO JSONL, add up to each arm's win rate, and a tenant never sees another's (404).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { preferenceRoutes } from "../../../edge/routes/preferences.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { PreferenceStore } from "../../../services/store/preferences.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { tenantApp } from "../../helpers/tenant-app.ts";

let database: OpenDatabase;
let app: ReturnType<typeof tenantApp>;
let acme: string;
let other: string;

beforeAll(async () => {
  database = openDatabase(":memory:");
  const tenants = new TenantStore(database.db);
  acme = (await tenants.create("acme")).id;
  other = (await tenants.create("other")).id;
  app = tenantApp("/v1/preferences", preferenceRoutes(new PreferenceStore(database.db)));
});
afterAll(() => database.close());

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const call = async (tenant: string, method: string, path: string, json?: unknown): Promise<Omit<Response, "json"> & { json(): Promise<Json> }> =>
  app.request(path, { method, headers: { "x-tenant": tenant, ...(json === undefined ? {} : { "content-type": "application/json" }) }, body: json === undefined ? undefined : JSON.stringify(json) });

const pair = (chosen: string, rejected: string, prompt = "Tell me a story") => ({
  messages: [{ role: "user", content: prompt }],
  chosen: { arm: chosen, content: `${chosen} answer` },
  rejected: { arm: rejected, content: `${rejected} answer` },
});

it("stores a pair and downloads it in OpenAI's DPO format", async () => {
  const res = await call(acme, "POST", "/v1/preferences", pair("rag", "prompt"));
  expect(res.status).toBe(201);
  const stored = await res.json();
  expect(stored).toMatchObject({ object: "preference", chosen: { arm: "rag", content: "rag answer" }, rejected: { arm: "prompt" } });

  const download = await call(acme, "GET", "/v1/preferences?format=jsonl");
  expect(download.headers.get("content-type")).toContain("application/jsonl");
  const lines = (await download.text()).trim().split("\n").map((l) => JSON.parse(l));
  expect(lines).toEqual([
    {
      input: { messages: [{ role: "user", content: "Tell me a story" }] },
      preferred_output: [{ role: "assistant", content: "rag answer" }],
      non_preferred_output: [{ role: "assistant", content: "prompt answer" }],
    },
  ]);
  expect((await (await call(acme, "GET", `/v1/preferences/${stored.id}`)).json()).id).toBe(stored.id);
});

it("counts each arm's wins and losses into a win rate", async () => {
  await call(other, "POST", "/v1/preferences", pair("prompt", "rag")); // another tenant's: not counted
  await call(acme, "POST", "/v1/preferences", pair("rag", "adapter"));
  await call(acme, "POST", "/v1/preferences", pair("adapter", "prompt"));
  const stats = (await (await call(acme, "GET", "/v1/preferences/stats")).json()).data;
  expect(stats).toEqual([
    { arm: "adapter", wins: 1, losses: 1, rated: 2, win_rate: 0.5 },
    { arm: "prompt", wins: 0, losses: 2, rated: 2, win_rate: 0 },
    { arm: "rag", wins: 2, losses: 0, rated: 2, win_rate: 1 },
  ]);
});

it("refuses a malformed pair with a 400 and stores nothing", async () => {
  const before = (await (await call(acme, "GET", "/v1/preferences")).json()).data.length;
  for (const bad of [
    { ...pair("rag", "prompt"), messages: [] },
    pair("rag", "rag"),
    { ...pair("rag", "prompt"), chosen: { arm: "nonsense", content: "x" } },
    { messages: [{ role: "user", content: "x" }], chosen: { arm: "rag", content: "x" } },
  ]) {
    const res = await call(acme, "POST", "/v1/preferences", bad);
    expect(res.status).toBe(400);
    expect((await res.json()).error.type).toBe("invalid_request_error");
  }
  expect((await (await call(acme, "GET", "/v1/preferences")).json()).data.length).toBe(before);
});

it("keeps tenants apart: another tenant's pair is a 404 to read or delete", async () => {
  const mine = await (await call(acme, "POST", "/v1/preferences", pair("rag", "prompt"))).json();
  expect((await call(other, "GET", `/v1/preferences/${mine.id}`)).status).toBe(404);
  expect((await call(other, "DELETE", `/v1/preferences/${mine.id}`)).status).toBe(404);
  const theirs = (await (await call(other, "GET", "/v1/preferences")).json()).data;
  expect(theirs.map((p: { id: string }) => p.id)).not.toContain(mine.id);
  expect((await call(acme, "DELETE", `/v1/preferences/${mine.id}`)).status).toBe(200);
  expect((await call(acme, "GET", `/v1/preferences/${mine.id}`)).status).toBe(404);
});
