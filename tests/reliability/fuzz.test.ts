/**
 * Malformed-input fuzz over every operation in the server's own OpenAPI document, against the real
 * server in a child process: no case may answer 5xx, hang, or break the OpenAI error shape, and the
 * server must be alive after. Cases derive from FUZZ_SEED, so a failure reproduces.
 */
import { afterAll, describe, expect, it } from "vitest";
import { ADMIN_KEY } from "../helpers/platform.ts";
import { oneShot, type OneShotAnswer } from "../helpers/one-shot-http.ts";
import { childTenant, removeDataDir, spawnServer } from "../helpers/server-child.ts";
import { casesFor, destructiveLast, operationsOf, type FuzzCase, type Operation } from "./fuzz-cases.ts";
import { uploadAdapter, uploadText } from "./fixtures.ts";
import { Tally, type Outcome } from "./tally.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const CASES = Number(process.env.FUZZ_CASES ?? 60);
/** Generous: a bound that catches a hang, not a measure of speed. */
const PER_REQUEST_MS = 20_000;

const server = await spawnServer({ env: { SWITCHYARD_REQUESTS_PER_MINUTE: "0" } });
const tally = new Tally();
let operations: Operation[] = [];
// Registered before the fixtures are made, so a failure making them still stops the server.
afterAll(async () => {
  console.log(tally.table(`fuzz (seed ${SEED}, ${CASES} cases per operation, ${operations.length} operations)`));
  await server.stop();
  removeDataDir(server.dataDir);
});
const fuzz = await childTenant(server, "fuzz");
const victim = await childTenant(server, "victim");
const documentIds = [
  (await uploadText(server, fuzz.key, "Refunds", "Refunds are paid within 14 days.")).id,
  (await uploadText(server, victim.key, "Secrets", "The victim's secret plan.")).id,
];
const adapterIds = [
  (await uploadAdapter(server, fuzz.key, "fuzz-bot")).id,
  (await uploadAdapter(server, victim.key, "victim-bot", 2)).id,
  (await uploadAdapter(server, ADMIN_KEY, "shared-bot", 3)).id,
];
/** Real ids for each operation's path parameters; the fuzz tenant's own tenant and key stay out of reach. */
function idsFor(op: Operation): string[] {
  if (op.path.startsWith("/v1/admin/tenants/")) return [victim.tenantId];
  if (op.path.startsWith("/v1/admin/keys/")) return [victim.keyId];
  if (op.path.includes("/adapters/")) return adapterIds;
  if (op.path.startsWith("/v1/models/")) return ["stories260k", "stories260k:fuzz-bot", "fuzz-bot@1", "shared-bot", "victim-bot"];
  if (op.path.startsWith("/v1/knowledge/documents/")) return documentIds;
  return [];
}
/** Model names that exist (and one that belongs to the victim), so valid chats reach the engine. */
const hints = { model: ["stories260k", "stories260k:fuzz-bot", "fuzz-bot@1", "shared-bot", "victim-bot", adapterIds[0]!] };
operations = destructiveLast(operationsOf(await (await server.call("GET", "/openapi.json")).json()));


/** Whole-index jobs re-embed every chunk: fewer cases keep the file fast. */
const countFor = (op: Operation) => (op.path.endsWith("/reindex") ? Math.ceil(CASES / 5) : CASES);

function seedFor(op: Operation): number {
  let h = SEED >>> 0;
  for (const ch of `${op.method} ${op.path}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

interface Result {
  outcome: Outcome;
  problem?: string;
}

async function send(c: FuzzCase): Promise<Result> {
  let res: OneShotAnswer;
  try {
    res = await oneShot(`${server.url}${c.path}`, c, PER_REQUEST_MS);
  } catch (e) {
    const timedOut = (e as Error).name === "AbortError" || (e as Error).name === "TimeoutError";
    return { outcome: timedOut ? "timeout" : "network-error", problem: timedOut ? `no answer within ${PER_REQUEST_MS} ms` : `request failed: ${String(e)}` };
  }
  const text = res.text;
  if (res.status >= 500) return { outcome: res.status, problem: `${res.status} ${text.slice(0, 200)}` };
  // 431 comes from Node's HTTP parser (headers or URL over 16 KB) before the app sees the request.
  if (res.status >= 400 && res.status !== 431 && c.method !== "HEAD" && !isOpenAiError(text)) return { outcome: res.status, problem: `${res.status} not an OpenAI-shaped error: ${text.slice(0, 200)}` };
  return { outcome: res.status };
}

function isOpenAiError(text: string): boolean {
  try {
    const { error } = JSON.parse(text) as { error?: { message?: unknown; type?: unknown } };
    return typeof error?.message === "string" && typeof error.type === "string";
  } catch {
    return false;
  }
}

describe(`fuzz every operation of /openapi.json (seed ${SEED})`, () => {
  it("the document lists the API's operations", () => {
    const names = operations.map((o) => `${o.method} ${o.path}`);
    for (const expected of ["POST /v1/chat/completions", "POST /v1/knowledge/documents", "POST /v1/adapters", "PATCH /v1/admin/tenants/{id}", "GET /v1/usage"]) {
      expect(names).toContain(expected);
    }
  });

  for (const op of operations) {
    it(`${op.method} ${op.path}: no 5xx, no hang, errors in OpenAI's shape`, async () => {
      const cases = casesFor(op, { seed: seedFor(op), count: countFor(op), credentials: credentialsFor(op), ids: idsFor(op), hints });
      const failures: string[] = [];
      for (const c of cases) {
        const { outcome, problem } = await send(c);
        tally.record(`${op.method} ${op.path}`, outcome);
        if (problem) failures.push(`${c.method} ${c.path.slice(0, 120)} ${c.label.slice(0, 200)} -> ${problem}`);
      }
      expect(server.alive(), `the server died: ${server.stderr().slice(-2000)}`).toBe(true);
      expect(failures, `${failures.length} of ${cases.length} cases failed (seed ${seedFor(op)})`).toEqual([]);
    }, 120_000);
  }

  it("the server is still alive and ready after every case", async () => {
    expect(server.alive()).toBe(true);
    expect((await server.call("GET", "/health", { timeoutMs: PER_REQUEST_MS })).status).toBe(200);
    expect((await server.call("GET", "/ready", { timeoutMs: PER_REQUEST_MS })).status).toBe(200);
    const me = await server.call("GET", "/v1/tenant", { key: fuzz.key, timeoutMs: PER_REQUEST_MS });
    expect(me.status).toBe(200);
  });
});

function credentialsFor(op: Operation) {
  return op.path.startsWith("/v1/admin") ? { right: ADMIN_KEY, wrong: fuzz.key } : { right: fuzz.key, wrong: ADMIN_KEY };
}
