/**
 * The engine's adapter lease: acquired when a request is submitted, released exactly once when its
 * sequence ends, finished (with its completion tokens), cancelled, failed or refused at submit.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LORA_TARGETS, type LoraWeights } from "../../../services/model/lora-layout.ts";
import { createEngine, type AdapterLeaseSource, type Engine } from "../../../services/inference/engine.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { collect, params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";
import { randomAdapter } from "../../helpers/tiny-model.ts";

interface Counted {
  acquired: string[];
  /** One entry per release call: [id, completionTokens]. */
  released: Array<[string, number | undefined]>;
}

function countingLeases(adapters: Map<string, LoraWeights>, counted: Counted): AdapterLeaseSource {
  return {
    async acquire(id) {
      counted.acquired.push(id);
      const weights = adapters.get(id);
      if (!weights) throw new Error(`adapter "${id}" not found`);
      return { weights, release: (n) => void counted.released.push([id, n]) };
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe("engine adapter leases", () => {
  let engine: Engine;
  let cacheDir: string;
  let counted: Counted;
  const adapters = new Map<string, LoraWeights>();

  beforeAll(async () => {
    const dir = findModel("stories260k");
    const config = await loadDecoderConfig(dir);
    adapters.set("r4", randomAdapter(config, "r4", 4, LORA_TARGETS, 1));
    adapters.set("r16", randomAdapter(config, "r16", 16, ["q_proj"], 2));
    adapters.set("r16-small", randomAdapter(config, "r16-small", 4, ["q_proj"], 3));
    cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-lease-"));
    counted = { acquired: [], released: [] };
    engine = await createEngine({ modelDir: dir, cacheDir, maxBatch: 1, maxQueue: 1, maxLoraRank: 8, adapters: countingLeases(adapters, counted) });
  });
  afterAll(async () => {
    await engine?.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  const reset = () => {
    counted.acquired.length = 0;
    counted.released.length = 0;
  };

  it("a finished sequence releases once, with its completion tokens; a base request leases nothing", async () => {
    reset();
    const out = await collect(engine.generate({ promptTokens: [1, 2, 3], params: params({ maxTokens: 6, logprobs: 0 }), adapter: "r4" }));
    await collect(engine.generate({ promptTokens: [1, 2, 3], params: params({ maxTokens: 2 }) }));
    await settle();
    expect(counted.acquired).toEqual(["r4"]);
    expect(counted.released).toEqual([["r4", out.done!.completionTokens]]);
  });

  it("a cancelled sequence releases once, without tokens", async () => {
    reset();
    const abort = new AbortController();
    const run = collect(engine.generate({ promptTokens: [1, 2, 3], params: params({ maxTokens: 200, logprobs: 0 }), adapter: "r4", signal: abort.signal }), (n) => {
      if (n === 2) abort.abort(new Error("client went away"));
    });
    await expect(run).rejects.toThrow(/client went away/);
    await settle();
    expect(counted.released).toEqual([["r4", undefined]]);
  });

  it("a refused adapter (rank above the node's) is released at once and fails only its request", async () => {
    reset();
    await expect(collect(engine.generate({ promptTokens: [1, 2], params: params({ maxTokens: 2 }), adapter: "r16" }))).rejects.toThrow(/rank 16, above/);
    await settle();
    expect(counted.acquired).toEqual(["r16"]);
    expect(counted.released).toEqual([["r16", undefined]]);
  });

  it("a failed acquire has nothing to release; a request refused at submit releases its lease", async () => {
    reset();
    await expect(collect(engine.generate({ promptTokens: [1, 2], params: params({ maxTokens: 2 }), adapter: "missing" }))).rejects.toThrow(/not found/);
    const first = collect(engine.generate({ promptTokens: [1, 2], params: params({ maxTokens: 4 }), adapter: "r4" }));
    expect(() => engine.generate({ promptTokens: [1, 2], params: params({ maxTokens: 4 }), adapter: "r4" })).toThrow(/queue/i); // maxQueue 1
    await first;
    await settle();
    expect(counted.acquired).toEqual(["missing", "r4", "r4"]);
    expect(counted.released).toHaveLength(2);
    expect(counted.released.filter(([, n]) => n === undefined)).toHaveLength(1); // the refused one
  });

  it("reports the adapters with running and with waiting requests (lora_requests_info), and forgets them when they end or are refused", async () => {
    const abort = new AbortController();
    const seen: string[] = [];
    // maxBatch 1, maxQueue 1: the first runs, the second waits, a third is refused at submit.
    const running = collect(engine.generate({ promptTokens: [1, 2, 3], params: params({ maxTokens: 300, logprobs: 0 }), adapter: "r4", signal: abort.signal }), (n) => {
      if (n === 2) seen.push(JSON.stringify(engine.adapterRequests()));
      if (n === 3) abort.abort(new Error("done looking"));
    });
    await new Promise((r) => setTimeout(r, 0));
    const waiting = collect(engine.generate({ promptTokens: [1, 2], params: params({ maxTokens: 2 }), adapter: "r16-small" }));
    expect(() => engine.generate({ promptTokens: [1], params: params({ maxTokens: 2 }), adapter: "r4" })).toThrow(/overloaded/);
    await expect(running).rejects.toThrow(/done looking/);
    await waiting.catch(() => undefined);
    expect(seen).toEqual([JSON.stringify({ running: ["r4"], waiting: ["r16-small"] })]);
    expect(engine.adapterRequests()).toEqual({ running: [], waiting: [] });
  });
});
