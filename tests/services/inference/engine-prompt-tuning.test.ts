/**
 * Prompt-tuning adapters served by the engine on stories260k: the virtual tokens' embeddings go
 * before the prompt at positions 0..N-1 (as PEFT's causal-LM forward numbers them), so every served
 * logprob equals the plain TypeScript reference forward run on the virtual embeddings then the
 * prompt; a batch mixing prompt tuning, LoRA and no adapter gives each sequence its own result.
 * Prefill chunks of 4 tokens make the virtual tokens span chunks and share one with the prompt.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateEvent } from "../../../ports/inference.ts";
import { seededRandom } from "../../../services/adapters/synthetic.ts";
import { createEngine, type Engine, unpinnedAdapters } from "../../../services/inference/engine.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../../services/model/config.ts";
import { LORA_TARGETS } from "../../../services/model/lora-layout.ts";
import type { AdapterWeights, PromptWeights } from "../../../services/model/prompt-tuning.ts";
import { ReferenceDecoder, type WeightLookup } from "../../../services/model/reference.ts";
import { expectClose } from "../../helpers/compare.ts";
import { params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";
import { MemoryWeights, mergedWeights, randomAdapter } from "../../helpers/tiny-model.ts";

const STEPS = 12;
const TOP = 5;
const TOLERANCE = 1e-4;

function promptWeights(config: DecoderConfig, id: string, n: number, seed: number): PromptWeights {
  const random = seededRandom(seed);
  const embeddings = Float32Array.from({ length: n * config.hiddenSize }, () => random());
  return { kind: "prompt_tuning", id, numVirtualTokens: n, embeddings, bytes: embeddings.byteLength };
}

/** Each generated token with its logprob and the top alternatives' logprobs by token. */
interface Served {
  tokens: number[];
  top: Array<Map<number, number>>;
  prompt?: Array<number | null>;
}

async function serve(events: AsyncIterable<GenerateEvent>, tokenize: (piece: string) => number): Promise<Served> {
  const out: Served = { tokens: [], top: [] };
  for await (const e of events) {
    if (e.type === "prompt") out.prompt = e.logprobs.map((p) => p.logprob);
    if (e.type !== "text" || !e.logprob) continue;
    out.tokens.push(e.tokenId);
    out.top.push(new Map(e.logprob.top.map((t) => [tokenize(t.token), t.logprob])));
  }
  return out;
}

describe("engine with prompt-tuning adapters on stories260k", () => {
  let engine: Engine;
  let cacheDir: string;
  let config: DecoderConfig;
  let base: MemoryWeights;
  const adapters = new Map<string, AdapterWeights>();
  let pieceToken: Map<string, number>;

  beforeAll(async () => {
    const dir = findModel("stories260k");
    config = await loadDecoderConfig(dir);
    base = await MemoryWeights.load(dir);
    adapters.set("pt-5", promptWeights(config, "pt-5", 5, 1));
    adapters.set("pt-2", promptWeights(config, "pt-2", 2, 2));
    adapters.set("lora", randomAdapter(config, "lora", 4, LORA_TARGETS, 3));
    cacheDir = await mkdtemp(join(tmpdir(), "sy-engine-pt-"));
    engine = await createEngine({ modelDir: dir, cacheDir, maxBatch: 8, prefillChunk: 4, adapters: unpinnedAdapters(async (id) => adapters.get(id)!) });
    pieceToken = new Map(Array.from({ length: config.vocabSize }, (_, t) => [new TextDecoder().decode(engine.tokenizer.tokenBytes(t)), t]));
  });
  afterAll(async () => {
    await engine.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  const run = (adapter: string | undefined, prompt: number[], promptLogprobs?: number) =>
    serve(engine.generate({ promptTokens: prompt, params: params({ maxTokens: STEPS, logprobs: TOP }), adapter, promptLogprobs }), (piece) => pieceToken.get(piece)!);

  /** The reference's log-softmax after the virtual tokens (if any), the prompt and each greedy token. */
  function reference(adapter: string | undefined, prompt: number[]) {
    const weights = adapter === undefined ? undefined : adapters.get(adapter)!;
    const lookup: WeightLookup = weights && weights.kind !== "prompt_tuning" ? (n) => mergedWeights(config, base, weights).getF32(n) : (n) => base.getF32(n);
    const ref = new ReferenceDecoder(config, lookup);
    const cache = ref.newCache();
    if (weights?.kind === "prompt_tuning") {
      const h = config.hiddenSize;
      ref.forwardEmbeddings(cache, Array.from({ length: weights.numVirtualTokens }, (_, k) => weights.embeddings.subarray(k * h, (k + 1) * h)));
    }
    const promptSteps = ref.forward(cache, prompt).map(logSoftmax);
    const steps: Float64Array[] = [];
    let logits = promptSteps.at(-1)!;
    for (let i = 0; i < STEPS; i++) {
      steps.push(logits);
      const token = argmax(logits);
      if (config.eosTokenIds.includes(token)) break;
      logits = logSoftmax(ref.forward(cache, [token])[0]!);
    }
    return { steps, promptSteps };
  }

  function expectReference(served: Served, adapter: string | undefined, prompt: number[], label: string) {
    const { steps } = reference(adapter, prompt);
    expect(served.tokens, label).toEqual(steps.slice(0, served.tokens.length).map(argmax));
    served.top.forEach((top, i) => {
      expect(top.size, label).toBe(TOP);
      const tokens = [...top.keys()];
      expectClose([...top.values()], tokens.map((t) => steps[i]![t]!), TOLERANCE, `${label} step ${i}`);
    });
  }

  it("serves the reference forward with the virtual embeddings prepended, unlike the base model", async () => {
    const prompt = engine.tokenize("Once upon a time");
    const tuned = await run("pt-5", prompt);
    expectReference(tuned, "pt-5", prompt, "pt-5");
    const plain = await run(undefined, prompt);
    expectReference(plain, undefined, prompt, "base");
    // The virtual tokens really change the model's distribution, so the match above is not the base model's.
    const first = [...tuned.top[0]!.keys()];
    const base = reference(undefined, prompt).steps[0]!;
    expect(Math.max(...first.map((t) => Math.abs(tuned.top[0]!.get(t)! - base[t]!)))).toBeGreaterThan(0.05);
  });

  it("scores an echoed prompt after the virtual tokens", async () => {
    const prompt = engine.tokenize("Tom had a red ball");
    const served = await run("pt-2", prompt, 0);
    const { promptSteps } = reference("pt-2", prompt);
    expect(served.prompt![0]).toBeNull();
    expectClose(served.prompt!.slice(1) as number[], prompt.slice(1).map((t, i) => promptSteps[i]![t]!), TOLERANCE, "prompt logprobs");
  });

  it("mixes prompt tuning, LoRA and no adapter in one batch, each as alone, with no new session", async () => {
    const sessions = engine.stats().sessionsCreated;
    const jobs: Array<[string | undefined, number[]]> = [
      ["pt-5", engine.tokenize("Tom had a red")],
      [undefined, engine.tokenize("The cat")],
      ["lora", engine.tokenize("One day, Lily")],
      ["pt-2", engine.tokenize("Once")],
      ["pt-5", engine.tokenize("The sun was")],
    ];
    const alone: Served[] = [];
    for (const [adapter, prompt] of jobs) alone.push(await run(adapter, prompt));
    const together = await Promise.all(jobs.map(([adapter, prompt]) => run(adapter, prompt)));
    together.forEach((got, i) => {
      expect(got.tokens).toEqual(alone[i]!.tokens);
      got.top.forEach((top, s) => expectClose([...top.values()], [...alone[i]!.top[s]!.values()], TOLERANCE, `request ${i} step ${s}`));
      expectReference(got, jobs[i]![0], jobs[i]![1], `request ${i}`);
    });
    expect(engine.stats().peakBatch).toBeGreaterThanOrEqual(4);
    expect(engine.stats().sessionsCreated).toBe(sessions);
  });

  it("counts the virtual tokens against the context", async () => {
    const prompt = engine.tokenize("Once upon a time");
    const maxTokens = config.maxPositionEmbeddings - prompt.length - 2; // fits without the 5 virtual tokens
    const go = (adapter: string | undefined) => serve(engine.generate({ promptTokens: prompt, params: params({ maxTokens }), adapter }), () => 0);
    await expect(go("pt-5")).rejects.toMatchObject({ kind: "context_length" });
    await expect(go("pt-2")).resolves.toBeDefined();
  });
});

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const norm = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - norm);
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
