/**
 * Serving throughput of 32 concurrent sequences over mixed prompt-tuning and LoRA adapters against
 * the base model alone, on stories260k through the engine end to end (32 generate() calls: continuous
 * batching, chunked prefill with the virtual tokens in front, decode, sampling; issue 16).
 * Variants, run interleaved over ROUNDS rounds (medians), each after one warm-up run:
 *   - base alone: no adapter;
 *   - 8 LoRA: 8 random rank-16 all-linear adapters, 4 sequences each;
 *   - 8 prompt tuning: 8 random prompt-tuning adapters of 8 virtual tokens, 4 sequences each;
 *   - 4 prompt tuning + 4 LoRA: the mix, sequences alternating between the 8 adapters.
 * Adapters are uploaded as PEFT folders to a real catalog (services/adapters/synthetic.ts) and leased
 * by the engine as the platform does. Decode tokens/s: tokens generated after the last of the 32
 * sequences got its first token, over the time after it (decode steps of the full batch); end to end:
 * all generated tokens over the 32 calls' wall time, prefill (8 prompt tokens, plus 8 virtual ones for
 * prompt tuning) included.
 * Run: `npm run bench -- adapters prompt-tuning` (bench-results/adapters-prompt-tuning.json); also the
 * last part of `npm run bench -- adapters`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { GenerateEvent, SamplingParams } from "../ports/index.ts";
import { createAdapterService } from "../services/adapters/index.ts";
import { randomPeftAdapter, randomPromptTuningAdapter, seededRandom } from "../services/adapters/synthetic.ts";
import { createEngine } from "../services/inference/engine.ts";
import { loadDecoderConfig } from "../services/model/config.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { openDatabase } from "../services/store/db.ts";
import { tenants } from "../services/store/schema.ts";
import { BENCH_ROOT, percentile, report } from "./report.ts";

const SEQUENCES = 32;
const RANK = 16;
const VIRTUAL_TOKENS = 8;
const PROMPT_TOKENS = 8;
const MAX_TOKENS = Number(process.env.BENCH_PT_MAX_TOKENS ?? 48);
const ROUNDS = Number(process.env.BENCH_PT_ROUNDS ?? 5);

interface Sample {
  /** Generated tokens over the 32 calls' wall time. */
  endToEnd: number;
  /** Tokens generated after the last sequence's first token, over the time after it: decode steps alone. */
  decode: number;
  /** From submitting the 32 calls to the last one's first token (prefill of all of them). */
  lastFirstTokenMs: number;
}

export async function promptTuningServing(): Promise<Record<string, string | number>[]> {
  const modelDir = await resolveModel("stories260k", resolveOptionsFromEnv(process.env, BENCH_ROOT));
  const config = await loadDecoderConfig(modelDir);
  const dir = await mkdtemp(join(tmpdir(), "sy-bench-adapters-pt-"));
  const store = openDatabase(join(dir, "data", "db.sqlite"));
  store.db.insert(tenants).values({ id: "t_bench", name: "bench" }).run();
  const service = await createAdapterService({ db: store.db, dataDir: join(dir, "data"), base: { id: "stories260k", shape: config }, limits: { maxRank: RANK }, cacheBudgetBytes: 2 ** 30, maxAdaptersPerBatch: 32 });
  const upload = async (name: string, files: Parameters<typeof service.catalog.upload>[0]["source"]) => (await service.catalog.upload({ tenantId: "t_bench", name, source: files })).id;
  const lora: string[] = [];
  const prompt: string[] = [];
  for (let k = 0; k < 8; k++) {
    lora.push(await upload(`lora-${k}`, randomPeftAdapter(config, { rank: RANK, alpha: 32, targets: "all-linear", seed: 100 + k, amplitude: 0.02 }).files));
    prompt.push(await upload(`pt-${k}`, randomPromptTuningAdapter(config, { numVirtualTokens: VIRTUAL_TOKENS, seed: 200 + k }).files));
  }
  const engine = await createEngine({ modelDir, cacheDir: join(dir, "compiled"), maxBatch: SEQUENCES, maxAdaptersPerBatch: 32, adapters: service.leases });
  const random = seededRandom(7);
  const prompts = Array.from({ length: SEQUENCES }, () => [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, () => 3 + Math.floor(((random() + 1) / 2) * (config.vocabSize - 3)))]);
  const params: SamplingParams = { maxTokens: MAX_TOKENS, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] };
  /** Each generated token's time. */
  const completion = async (events: AsyncIterable<GenerateEvent>) => {
    const times: number[] = [];
    for await (const e of events) if (e.type === "text") times.push(performance.now());
    return times;
  };
  const run = async (adapterOf: (r: number) => string | undefined): Promise<Sample> => {
    const started = performance.now();
    const times = await Promise.all(prompts.map((promptTokens, r) => completion(engine.generate({ promptTokens, params, adapter: adapterOf(r) }))));
    const ended = performance.now();
    const decodeFrom = Math.max(...times.map((t) => t[0] ?? ended)); // every sequence has been prefilled
    const all = times.flat();
    return {
      endToEnd: all.length / ((ended - started) / 1000),
      decode: all.filter((t) => t > decodeFrom).length / ((ended - decodeFrom) / 1000),
      lastFirstTokenMs: decodeFrom - started,
    };
  };
  const mixed = [...prompt.slice(0, 4), ...lora.slice(0, 4)];
  const variants = [
    { name: "base alone", adapters: "none", run: () => run(() => undefined) },
    { name: "8 LoRA", adapters: `8 × r=${RANK} all-linear`, run: () => run((r) => lora[r % 8]) },
    { name: "8 prompt tuning", adapters: `8 × ${VIRTUAL_TOKENS} virtual tokens`, run: () => run((r) => prompt[r % 8]) },
    { name: "4 prompt tuning + 4 LoRA", adapters: "mixed, alternating", run: () => run((r) => mixed[(r % 2) * 4 + ((r >> 1) % 4)]) },
  ];
  try {
    for (const v of variants) await v.run(); // warm-up: graphs, adapter loads, slots
    const samples = variants.map(() => [] as Sample[]);
    for (let round = 0; round < ROUNDS; round++) for (const [k, v] of variants.entries()) samples[k]!.push(await v.run());
    const med = (k: number, f: (s: Sample) => number) => percentile(samples[k]!.map(f), 50);
    return variants.map((v, k) => ({
      variant: v.name,
      adapters: v.adapters,
      sequences: SEQUENCES,
      "decode tokens/s": Math.round(med(k, (s) => s.decode)),
      "decode vs base": `${(med(k, (s) => s.decode) / med(0, (s) => s.decode)).toFixed(2)}x`,
      "end-to-end tokens/s": Math.round(med(k, (s) => s.endToEnd)),
      "end-to-end vs base": `${(med(k, (s) => s.endToEnd) / med(0, (s) => s.endToEnd)).toFixed(2)}x`,
      "last first token ms": Math.round(med(k, (s) => s.lastFirstTokenMs)),
    }));
  } finally {
    await engine.close();
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export const PROMPT_TUNING_SERVING = { sequences: SEQUENCES, rank: RANK, virtualTokens: VIRTUAL_TOKENS, promptTokens: PROMPT_TOKENS, maxTokens: MAX_TOKENS, rounds: ROUNDS };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  report("adapters-prompt-tuning", await promptTuningServing(), PROMPT_TUNING_SERVING);
}
