/**
 * A fleet: three real `switchyard serve inference` processes on loopback behind one Node edge
 * (`--inference-url A,B,C`), all on one data dir (the nodes lease the adapters the edge catalogs).
 * Chats over ten adapters land each adapter on its rendezvous node (seen in the nodes' own cache
 * counters and residency); the vLLM-named gauges show a running adapter; a FleetInference of its own
 * retries past an unreachable node and spills past a saturated one; and a node killed with -9 mid-run
 * loses no request that had not started streaming, while its adapters move to their next node.
 * Nodes refusing calls without the node secret: here for /v1/node/load, and in plane-nodes.test.ts.
 */
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetInference } from "../../../clients/fleet.ts";
import { rendezvousOrder } from "../../../clients/rendezvous.ts";
import type { NodeLoad } from "../../../clients/wire/load.ts";
import { PlaneError } from "../../../ports/errors.ts";
import type { GenerateEvent, SamplingParams } from "../../../ports/inference.ts";
import { uploadRandomAdapter } from "../../edge/chat/fixtures.ts";
import { findModel } from "../../helpers/model-path.ts";
import { NODE_SECRET, spawnPlaneNode, type PlaneNodeChild } from "../../helpers/plane-node.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

const params = (maxTokens: number): SamplingParams => ({ maxTokens, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] });
const first = (urls: string[], key: string) => rendezvousOrder(urls, key, (u) => u)[0]!;

/** Requests each adapter's cache saw on a node (hits + misses), from its /metrics. */
async function adapterRequests(node: PlaneNodeChild): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await (await node.call("/metrics")).text()).split("\n")) {
    const m = /^switchyard_adapter_cache_(?:hits|misses)_total\{adapter="([^"]+)"\} (\d+)/.exec(line);
    if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return counts;
}

async function nodeLoad(node: PlaneNodeChild): Promise<NodeLoad> {
  return (await (await node.call("/v1/node/load")).json()) as NodeLoad;
}

/** A free loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface StreamOutcome {
  status: number;
  /** Content deltas received before the stream ended. */
  tokens: number;
  error?: { code?: string };
  done: boolean;
}

/** A streamed chat, read to its end; `onToken` sees the first content delta. */
async function streamChat(edge: TestPlatform, key: string, model: string, maxTokens: number, onToken?: () => void): Promise<StreamOutcome> {
  const response = await edge.call("POST", "/v1/chat/completions", { key, json: { model, stream: true, max_tokens: maxTokens, temperature: 0, messages: [{ role: "user", content: "Once upon a time" }] } });
  const outcome: StreamOutcome = { status: response.status, tokens: 0, done: false };
  if (response.status !== 200) return outcome;
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end).replace(/^data: /, "");
      buffer = buffer.slice(end + 2);
      if (frame === "[DONE]") outcome.done = true;
      else {
        const data = JSON.parse(frame);
        if (data.error) outcome.error = data.error;
        else if (data.choices?.[0]?.delta?.content) {
          if (outcome.tokens++ === 0) onToken?.();
        }
      }
    }
  }
  return outcome;
}

describe("an inference fleet behind one edge", () => {
  let nodes: PlaneNodeChild[];
  let urls: string[];
  let edge: TestPlatform;
  let key: string;
  /** Adapter name -> id. */
  const adapters = new Map<string, string>();
  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switchyard-fleet-"));
    // The first node applies the migrations and compiles the model; the others find both done.
    const firstNode = await spawnPlaneNode("inference", {}, dataDir);
    nodes = [firstNode, ...(await Promise.all([spawnPlaneNode("inference", {}, dataDir), spawnPlaneNode("inference", {}, dataDir)]))];
    urls = nodes.map((n) => n.url);
    edge = await startTestPlatform(
      { SWITCHYARD_MODEL: findModel("stories260k"), SWITCHYARD_INFERENCE_URL: urls.join(","), SWITCHYARD_NODE_SECRET: NODE_SECRET, SWITCHYARD_REQUESTS_PER_MINUTE: "0", SWITCHYARD_FLEET_CHECK_INTERVAL_MS: "60000" },
      { dataDir },
    );
    ({ key } = await createTenantWithKey(edge));
    for (let i = 0; i < 10; i++) adapters.set(`style-${i}`, await uploadRandomAdapter(edge, key, `style-${i}`, 100 + i));
  }, 240_000);
  afterAll(async () => {
    await edge?.stop().catch(() => undefined);
    await Promise.all((nodes ?? []).map((n) => n.stop()));
  });

  it("sends each adapter to its one rendezvous node, where it is resident and nowhere else", async () => {
    const chat = (model: string) => edge.call("POST", "/v1/chat/completions", { key, json: { model, max_tokens: 2, messages: [{ role: "user", content: "Hi" }] } });
    const responses = await Promise.all([...adapters.keys()].flatMap((name) => [chat(name), chat(name), chat(name)]));
    expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
    const seen = await Promise.all(nodes.map(adapterRequests));
    const resident = await Promise.all(nodes.map(async (n) => (await nodeLoad(n)).residentAdapters));
    const owners = new Set<string>();
    for (const id of adapters.values()) {
      const where = nodes.flatMap((n, i) => (seen[i]!.has(id) ? [n.url] : []));
      expect(where).toEqual([first(urls, id)]);
      expect(seen[urls.indexOf(where[0]!)]!.get(id)).toBe(3);
      expect(nodes.filter((_, i) => resident[i]!.includes(id)).map((n) => n.url)).toEqual(where);
      owners.add(where[0]!);
    }
    expect(owners.size).toBeGreaterThan(1); // ten adapters do not all hash to one node
    // Without the node secret the load route is refused, like every other /v1 route of a node.
    expect((await nodes[0]!.call("/v1/node/load", { authorization: null })).status).toBe(401);
  });

  it("shows a running adapter in vLLM's lora_requests_info and num_requests_running while it streams", async () => {
    const [name, id] = [...adapters.entries()][0]!;
    const owner = nodes[urls.indexOf(first(urls, id))]!;
    let page = "";
    let load: NodeLoad | undefined;
    const outcome = await streamChat(edge, key, name, 128, () => {
      void (async () => {
        [page, load] = [await (await owner.call("/metrics", { authorization: null })).text(), await nodeLoad(owner)];
      })();
    });
    expect(outcome.status).toBe(200);
    for (let i = 0; i < 100 && !load; i++) await new Promise((r) => setTimeout(r, 10));
    const info = page.split("\n").find((l) => l.startsWith("vllm:lora_requests_info{"));
    expect(info).toMatch(new RegExp(`running_lora_adapters="[^"]*${id}`));
    expect(info).toMatch(/max_lora="\d+"/);
    expect(Number(info!.split(" ").at(-1))).toBeGreaterThan(Date.now() / 1000 - 60); // a timestamp, in seconds
    expect(Number(/^vllm:num_requests_running (\d+)/m.exec(page)?.[1])).toBeGreaterThanOrEqual(1);
    expect(page).toMatch(/^vllm:num_requests_waiting \d+/m);
    expect(load!.runningAdapters).toContain(id);
    // Afterwards nothing runs, and the adapter stays resident.
    const after = await nodeLoad(owner);
    expect({ running: after.running, runningAdapters: after.runningAdapters }).toEqual({ running: 0, runningAdapters: [] });
    expect(after.residentAdapters).toContain(id);
  });

  it("retries a generation past an unreachable node before its first event, and takes that node out", async () => {
    // Port 9 (discard) has no listener here; the path only gives the dead node a name that comes first for the base model's key.
    const dead = Array.from({ length: 200 }, (_, i) => `http://127.0.0.1:9/n${i}`).find((d) => first([d, ...urls], "") === d)!;
    const order = rendezvousOrder([dead, ...urls], "", (u) => u);
    const fleet = new FleetInference({ nodes: [dead, ...urls], secret: NODE_SECRET });
    try {
      const events: GenerateEvent[] = [];
      for await (const e of fleet.generate({ promptTokens: [1], params: params(3) })) events.push(e);
      expect(events.at(-1)).toMatchObject({ type: "done", completionTokens: 3 });
      const stats = fleet.stats();
      expect(stats.retries).toBe(1);
      expect(stats.nodes.map((n) => [n.url, n.up, n.served])).toEqual([dead, ...urls].map((u) => [u, u !== dead, u === order[1] ? 1 : 0]));
      // Out until a check answers: tried last, after the others in their rendezvous order.
      expect(fleet.candidates("")).toEqual([...order.slice(1), dead]);
      await fleet.check();
      expect(fleet.stats().nodes[0]!.up).toBe(false);
    } finally {
      await fleet.close();
    }
  });

  it("spills past a node whose queue is full, to the key's next node, and never past a refusal every node would give", async () => {
    const fleet = new FleetInference({ nodes: urls, secret: NODE_SECRET, spillQueueDepth: 1 });
    const order = rendezvousOrder(urls, "", (u) => u);
    await fleet.check(); // learns each node's batch slots (maxRunning)
    const { maxRunning } = fleet.stats().nodes[0]!.load!;
    // Enough held generations to fill the first node's batch and queue one.
    const controllers = Array.from({ length: maxRunning + 1 }, () => new AbortController());
    const held = controllers.map((c) => fleet.generate({ promptTokens: [1], params: params(400), signal: c.signal })[Symbol.asyncIterator]());
    const pending = held.map((g) => g.next().catch(() => undefined));
    try {
      expect(fleet.stats().nodes.find((n) => n.url === order[0])!.inflight).toBe(maxRunning + 1);
      const events: GenerateEvent[] = [];
      for await (const e of fleet.generate({ promptTokens: [1], params: params(2) })) events.push(e);
      expect(events.at(-1)).toMatchObject({ type: "done" });
      expect(fleet.stats().spills).toBe(1);
      expect(fleet.stats().nodes.find((n) => n.url === order[1])!.served).toBe(1);
      // A prompt over the context is refused by every node alike: no retry, no spill.
      const err = await (async () => {
        for await (const _ of fleet.generate({ promptTokens: Array.from({ length: 600 }, () => 1), params: params(2), adapter: "x" })) void _;
      })().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(PlaneError);
      expect(fleet.stats().retries).toBe(0);
    } finally {
      for (const c of controllers) c.abort(new Error("test done"));
      await Promise.all(pending);
      await Promise.all(held.map((g) => g.return?.(undefined)));
      await fleet.close();
    }
  });

  it("loses no request that had not started streaming when a node is killed with -9, and moves its adapters to their next node", async () => {
    const owner = (id: string) => first(urls, id);
    const byOwner = new Map<string, string[]>();
    for (const [name, id] of adapters) byOwner.set(owner(id), [...(byOwner.get(owner(id)) ?? []), name]);
    const victimUrl = [...byOwner.entries()].sort((a, b) => b[1].length - a[1].length)[0]![0];
    const victim = nodes[urls.indexOf(victimUrl)]!;
    const survivors = urls.filter((u) => u !== victimUrl);
    const victimAdapters = byOwner.get(victimUrl)!;
    const before = await Promise.all(nodes.filter((n) => n !== victim).map(adapterRequests));

    // A generation of our own on the victim, started: its stream must break with an error, never be retried.
    const fleet = new FleetInference({ nodes: urls, secret: NODE_SECRET });
    const direct = fleet.generate({ promptTokens: [1], params: params(400), adapter: adapters.get(victimAdapters[0]!) })[Symbol.asyncIterator]();
    expect((await direct.next()).done).toBe(false);

    let killed!: Promise<void>;
    let onVictimToken!: () => void;
    const victimStreaming = new Promise<void>((resolve) => (onVictimToken = resolve));
    const round1 = [...adapters.keys()].map((name) => streamChat(edge, key, name, 64, victimAdapters.includes(name) ? onVictimToken : undefined).then((o) => ({ name, ...o })));
    await victimStreaming;
    killed = victim.kill("SIGKILL");
    await killed;
    // Sent after the kill, before any health check (60 s apart): the victim's adapters fail over by retry.
    const round2 = [...adapters.keys()].map(async (name) => {
      const r = await edge.call("POST", "/v1/chat/completions", { key, json: { model: name, max_tokens: 4, messages: [{ role: "user", content: "Hi" }] } });
      return { name, status: r.status };
    });
    const [first1, second] = await Promise.all([Promise.all(round1), Promise.all(round2)]);

    // Every stream either finished, or broke after it had started (only the victim's can break).
    for (const o of first1) {
      expect(o.status, o.name).toBe(200);
      if (o.error) {
        expect(o.tokens, o.name).toBeGreaterThan(0);
        expect(victimAdapters).toContain(o.name);
      } else expect(o.done, o.name).toBe(true);
    }
    expect(first1.some((o) => o.error)).toBe(true); // the kill did land mid-stream
    expect(second.map((r) => r.status)).toEqual(second.map(() => 200));

    // The victim's adapters are now served by their next node among the survivors; the others stay put.
    const after = await Promise.all(nodes.filter((n) => n !== victim).map(adapterRequests));
    for (const [name, id] of adapters) {
      const grew = survivors.filter((_, i) => (after[i]!.get(id) ?? 0) > (before[i]!.get(id) ?? 0));
      expect(grew, name).toEqual([victimAdapters.includes(name) ? first(survivors, id) : owner(id)]);
    }

    const err = await (async () => {
      for (let next = await direct.next(); !next.done; next = await direct.next());
    })().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(PlaneError);
    expect((err as PlaneError).code).toBe("stream_broken");
    expect(fleet.stats().retries).toBe(0);
    await fleet.close();
    const metrics = await (await edge.call("GET", "/metrics")).text();
    expect(metrics).toContain(`switchyard_fleet_node_up{node="${victimUrl}"} 0`);
  });
});
