/**
 * The in-process inference engine: loads a Hugging Face Llama-family folder, compiles (or loads
 * from the compile cache) the decoder graph, and serves `Inference.generate` through the
 * continuous-batching scheduler, with sampling, incremental detokenization and stop sequences.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import * as ort from "onnxruntime-node";
import type { GenerateEvent, GenerateRequest, Inference, ModelInfo } from "../../ports/inference.ts";
import { loadChatTemplate, type ChatTemplate } from "../model/chat-template.ts";
import { checkSourceWeights, compileDecoders, defaultCompileCacheDir, type CompiledGraph, type CompiledModel, type WeightsCheck } from "../model/compile-cache.ts";
import { loadDecoderConfig, type DecoderConfig } from "../model/config.ts";
import type { DecoderOptions } from "../model/decoder.ts";
import type { Int8Weights } from "../model/llama/projection.ts";
import { hasInt8DotProduct } from "../model/cpu-features.ts";
import type { WeightFormat } from "../model/quantize.ts";
import { openWeights } from "../model/safetensors.ts";
import { loadTokenizer, type TextTokenizer } from "../model/tokenizer.ts";
import { DecoderRunner } from "./decoder-runner.ts";
import type { LoraSlots } from "./lora-feeds.ts";
import { ContextOverflowError, InvalidGenerateRequestError } from "./errors.ts";
import { Generation, type GenerationContext } from "./generation.ts";
import { promptEncoder } from "./prompt-encoder.ts";
import { Scheduler, type SchedulerStats } from "./scheduler.ts";
import type { AdapterLease, AdapterLeaseSource } from "./adapter-lease.ts";
import { AdapterRequestTally, type AdapterRequests } from "./adapter-requests.ts";
import { LoraSlotTable } from "./slot-table.ts";
import { isPromptTuning, type AdapterWeights } from "../model/prompt-tuning.ts";
import { ExecutionProviderError, type ExecutionProvider } from "./execution-provider.ts";

export type { AdapterRequests } from "./adapter-requests.ts";
export { EXECUTION_PROVIDERS, ExecutionProviderError, type ExecutionProvider } from "./execution-provider.ts";
export { unpinnedAdapters, type AdapterLease, type AdapterLeaseSource } from "./adapter-lease.ts";

export interface EngineOptions {
  /** A local Hugging Face model folder (resolve repo ids first with services/model/resolve.ts). */
  modelDir: string;
  /** Where compiled graphs are cached; default `<data dir>/compiled`. */
  cacheDir?: string;
  /** Model id reported by `model()`; default the folder name. */
  modelId?: string;
  /** Most sequences decoded together (default 32). */
  maxBatch?: number;
  /** Most requests waiting to start; beyond it `generate` throws EngineOverloadedError (default 256). */
  maxQueue?: number;
  /** Most prompt tokens of one sequence per prefill iteration (default 64). */
  prefillChunk?: number;
  /** Most prompt tokens of all sequences prefilled together per iteration (default 8 chunks). */
  prefillBudget?: number;
  /** Most distinct adapters in one running batch (default 8). */
  maxAdaptersPerBatch?: number;
  /**
   * Leases adapters by id (the adapter plane's leases): acquired when a request is submitted, released
   * when its sequence ends. Without it, adapters are refused.
   */
  adapters?: AdapterLeaseSource;
  /** onnxruntime intra-op threads (default 1: for small models threads cost more than they give). */
  intraOpThreads?: number;
  /** onnxruntime's execution provider (default "cpu"); one that cannot load fails the start (execution-provider.ts). */
  executionProvider?: ExecutionProvider;
  /** Largest adapter rank served (default 64); the LoRA slots grow to the largest rank loaded, up to it. */
  maxLoraRank?: number;
  /**
   * Keeps the batch's LoRA tensors between steps; default: persistent slots (services/inference/slot-table.ts),
   * one per adapter a batch may hold, an adapter copied in only when first needed.
   */
  loraSlots?: LoraSlots;
  /** Hashes the source weights in the background after start to catch a change their identity misses (default true). */
  verifyWeights?: boolean;
  /** How sessions hold the weights (see `WeightMemory`); default `SWITCHYARD_WEIGHT_MEMORY` or "mapped". */
  weightMemory?: WeightMemory;
  /**
   * The base weights' format in every graph (SWITCHYARD_WEIGHTS): "f32" (default), "int8" (per output
   * channel) or "int4" (blocks of 32), quantized when the graphs are compiled (and cached per format).
   * LoRA adapters and prompt-tuning embeddings stay float.
   */
  weights?: WeightFormat;
}

export interface EngineStats extends SchedulerStats {
  /** InferenceSessions this engine created; constant after start (adapters never add one). */
  sessionsCreated: number;
  /**
   * The background content check of the source weights (services/model/compile-cache.ts
   * `checkSourceWeights`): "checking" until it ends, "changed" if they changed under the same identity.
   */
  weightsCheck: WeightsCheck | "checking" | "off" | "failed";
}

export interface Engine extends Inference {
  readonly config: DecoderConfig;
  readonly tokenizer: TextTokenizer;
  readonly chatTemplate: ChatTemplate;
  readonly info: ModelInfo;
  /** In-process conveniences (the CLI, benchmarks, tests): the tokenizer as `encode` uses it. */
  tokenize(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Token ids back to text, special tokens left out. */
  detokenize(tokens: number[]): string;
  stats(): EngineStats;
  /** The adapters with waiting and with running requests (vLLM's lora_requests_info). */
  adapterRequests(): AdapterRequests;
  /** Most sequences decoded together (a node's capacity before requests queue). */
  readonly maxBatch: number;
}

/**
 * The engine keeps its cache in preallocated buffers, so its graphs return only new keys/values;
 * decode steps (one token per sequence) run a leaner decode-only graph.
 */
export const ENGINE_GRAPHS = {
  prefill: { fused: true, kvOutput: "new", virtualTokens: true },
  decode: { fused: true, decodeOnly: true },
} satisfies Record<string, DecoderOptions>;

export type EngineVariant = "prefill" | "decode" | "prefillLora" | "decodeLora";

/** How int8 weights are stored on this CPU: as int8 where it has VNNI, else as uint8 (DecoderOptions `int8Weights`). */
export const int8WeightsForCpu = (): Int8Weights => (hasInt8DotProduct() ? "int8" : "uint8");

/** The four graph variants the engine runs, all over one copy of the weights, int8 weights stored as this CPU computes them best. */
export function engineVariants(weights: WeightFormat = "f32", int8Weights: Int8Weights = int8WeightsForCpu()): Record<EngineVariant, DecoderOptions> {
  const format = { weights, int8Weights };
  return {
    prefill: { ...ENGINE_GRAPHS.prefill, ...format },
    decode: { ...ENGINE_GRAPHS.decode, ...format },
    prefillLora: { ...ENGINE_GRAPHS.prefill, lora: true, ...format },
    decodeLora: { ...ENGINE_GRAPHS.decode, lora: true, ...format },
  };
}

/**
 * How the sessions hold the weights; both keep one copy in memory.
 * - "mapped": every variant's session computes from the memory-mapped weights (the source safetensors
 *   served in place, or the one weight file, services/model/compile-cache.ts; small tensors are inline
 *   per graph) with onnxruntime's weight prepacking off, which would otherwise
 *   copy every MatMul weight into a packed buffer per session. The sessions (prefill and decode-only,
 *   with adapters also their LoRA graphs) share its pages; start is fast (nothing is packed).
 *   Multi-row matrix products pack the weights on the fly, so prefill and batched decode are slower.
 * - "packed": prepacking on, and one session: the general graph, which also decodes, and with
 *   adapters the LoRA graph, which also serves rows and steps without one. So the one copy is the
 *   packed one: faster prefill and batched decode, slower start (packing); the embedding stays mapped
 *   besides (Gather reads it).
 * The default follows the weight format: "mapped" for f32, "packed" for int8 and int4, whose operators
 * (DynamicQuantizeMatMul, MatMulNBits) compute from their prepacked layout only: unpacked, int4
 * decodes about 100× slower. `SWITCHYARD_WEIGHT_MEMORY=mapped|packed` overrides it.
 */
export type WeightMemory = "mapped" | "packed";

export function weightMemoryFromEnv(env: NodeJS.ProcessEnv = process.env, weights: WeightFormat = "f32"): WeightMemory {
  const value = env.SWITCHYARD_WEIGHT_MEMORY ?? (weights === "f32" ? "mapped" : "packed");
  if (value !== "mapped" && value !== "packed") throw new Error(`SWITCHYARD_WEIGHT_MEMORY must be mapped or packed, got "${value}"`);
  return value;
}

/**
 * Session options of every engine session (see `WeightMemory` for prepacking). The CPU memory arena is
 * off: it keeps the largest activations of any step for good (about 80 MiB on the 4-layer TinyLlama
 * shape); without it tiny models prefill slower (stories260k about 2×), larger ones alike.
 */
export function engineSessionOptions(intraOpThreads: number, weightMemory: WeightMemory = "mapped"): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    enableCpuMemArena: false,
    extra: { session: { disable_prepacking: weightMemory === "mapped" ? "1" : "0" } },
  };
}

/**
 * A session of a compiled graph, its external data read from the graph's `dataFolder` (the source
 * weights' folder when served in place, which onnxruntime would not find relative to the .onnx).
 */
export async function compiledSession(graph: CompiledGraph, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  const extra = options.extra as { session?: Record<string, string> } | undefined;
  const session = { ...extra?.session, model_external_initializers_file_folder_path: graph.dataFolder };
  return ort.InferenceSession.create(await readFile(graph.modelPath), { ...options, extra: { ...extra, session } });
}

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const dir = options.modelDir;
  const [config, tokenizer, chatTemplate] = await Promise.all([loadDecoderConfig(dir), loadTokenizer(dir), loadChatTemplate(dir)]);
  const cacheDir = options.cacheDir ?? defaultCompileCacheDir();
  const weightMemory = options.weightMemory ?? weightMemoryFromEnv(process.env, options.weights);
  const weights = await openWeights(dir);
  let compiled: CompiledModel<EngineVariant>;
  try {
    // All variants at once, LoRA ones too: one weight file, each packed weight derived once, and a later start with adapters is warm.
    compiled = await compileDecoders({ config, weights, cacheDir }, engineVariants(options.weights));
  } finally {
    weights.close();
  }
  const sessions: ort.InferenceSession[] = [];
  const session = async (variant: EngineVariant) => {
    const provider = options.executionProvider ?? "cpu";
    const sessionOptions = { ...engineSessionOptions(options.intraOpThreads ?? 1, weightMemory), executionProviders: [provider] };
    const created = await compiledSession(compiled.graphs[variant], sessionOptions).catch((err: unknown) => {
      throw provider === "cpu" ? err : new ExecutionProviderError(provider, err);
    });
    sessions.push(created);
    return created;
  };
  const packed = weightMemory === "packed";
  const runner = async (lora: boolean) => {
    const general = await session(lora ? "prefillLora" : "prefill");
    // Packed: each session would hold its own packed copy, so the general graph decodes too.
    return new DecoderRunner(general, config, packed ? undefined : await session(lora ? "decodeLora" : "decode"));
  };
  // Packed with adapters: the LoRA graph alone serves every step, so one session holds the one packed copy.
  const plain = packed && options.adapters ? undefined : await runner(false);
  const withLora = options.adapters ? await runner(true) : undefined;
  const sessionsCreated = sessions.length;
  let weightsCheck: WeightsCheck | "checking" | "off" | "failed" = "off";
  // close() stops the check and waits for it, so nothing writes into the compile cache after the engine closed.
  const stopCheck = new AbortController();
  let checked: Promise<void> = Promise.resolve();
  if (options.verifyWeights ?? true) {
    weightsCheck = "checking";
    checked = checkSourceWeights(compiled.dir, () => weights.contentHash(stopCheck.signal), stopCheck.signal).then(
      (result) => {
        weightsCheck = result;
        if (result === "changed") console.warn(`${dir}: the weights changed since they were compiled; the next start recompiles`);
      },
      () => void (weightsCheck = stopCheck.signal.aborted ? "off" : "failed"),
    );
  }
  const maxAdaptersPerBatch = options.maxAdaptersPerBatch ?? 8;
  const maxLoraRank = options.maxLoraRank ?? 64;
  const maxBatch = options.maxBatch ?? 32;
  const tally = new AdapterRequestTally();
  const scheduler = new Scheduler(
    config,
    plain,
    withLora,
    withLora && (options.loraSlots ?? new LoraSlotTable(config, maxAdaptersPerBatch, maxLoraRank)),
    {
      maxBatch,
      maxQueue: options.maxQueue ?? 256,
      prefillChunk: options.prefillChunk ?? 64,
      prefillBudget: options.prefillBudget ?? 8 * (options.prefillChunk ?? 64),
      maxAdaptersPerBatch,
    },
  );
  const info: ModelInfo = { id: options.modelId ?? basename(dir), contextLength: config.maxPositionEmbeddings, vocabSize: config.vocabSize };

  const eosTokenIds = new Set([...config.eosTokenIds, ...tokenizer.eosTokenIds]);
  const acquireAdapter = async (request: GenerateRequest): Promise<AdapterLease | undefined> => {
    const id = request.adapter;
    if (id === undefined || !options.adapters) return undefined;
    const lease = await options.adapters.acquire(id);
    // Refused here, so only this request fails (the LoRA slots would otherwise fail the whole batch).
    try {
      checkAdapterFits(request, lease.weights, config, maxLoraRank);
    } catch (e) {
      lease.release();
      throw e;
    }
    return lease;
  };

  const { encode, tokenize, detokenize } = promptEncoder(tokenizer, chatTemplate, info);

  return {
    config,
    tokenizer,
    chatTemplate,
    info,
    model: async () => info,
    encode,
    tokenize,
    detokenize,
    generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
      validate(request, config);
      if (request.adapter !== undefined && !options.adapters) {
        throw new InvalidGenerateRequestError(`adapter "${request.adapter}" requested, but this engine serves no adapters`);
      }
      const generation = new Generation(request, {
        tokenizer,
        vocabSize: config.vocabSize,
        eosTokenIds,
        contextLength: config.maxPositionEmbeddings,
        lease: acquireAdapter(request),
        poke: () => scheduler.poke(),
        lifecycle: adapterLifecycle(tally, request.adapter),
      });
      if (request.adapter !== undefined) tally.submitted(request.adapter);
      try {
        scheduler.submit(generation);
      } catch (e) {
        generation.releaseLease(); // refused (queue full, closed): the sequence never starts
        if (request.adapter !== undefined) tally.ended(request.adapter, false);
        throw e;
      }
      return generation.events;
    },
    stats: () => ({ ...scheduler.stats(), sessionsCreated, weightsCheck }),
    adapterRequests: () => tally.snapshot(),
    maxBatch,
    async close() {
      stopCheck.abort();
      await checked;
      await scheduler.close();
      await Promise.all(sessions.map((s) => s.release()));
    },
  };
}

/** Moves an adapter request (counted as waiting at submit) to running, then out (nothing for the base model). */
function adapterLifecycle(tally: AdapterRequestTally, id: string | undefined): GenerationContext["lifecycle"] {
  if (id === undefined) return undefined;
  return { started: () => tally.started(id), ended: (started) => tally.ended(id, started) };
}

/** A LoRA adapter's rank within the slots'; a prompt-tuning one's embeddings of the model's width, its virtual tokens within the context. */
function checkAdapterFits(request: GenerateRequest, weights: AdapterWeights, config: DecoderConfig, maxLoraRank: number): void {
  if (!isPromptTuning(weights)) {
    if (weights.maxRank > maxLoraRank) {
      throw new InvalidGenerateRequestError(`adapter ${weights.id} has rank ${weights.maxRank}, above this node's maximum LoRA rank ${maxLoraRank}`);
    }
    return;
  }
  if (weights.embeddings.length !== weights.numVirtualTokens * config.hiddenSize) {
    throw new InvalidGenerateRequestError(`prompt-tuning adapter ${weights.id} does not fit the model's hidden size ${config.hiddenSize}`);
  }
  const prompt = weights.numVirtualTokens + request.promptTokens.length;
  if (prompt + request.params.maxTokens > config.maxPositionEmbeddings) {
    throw new ContextOverflowError(prompt, request.params.maxTokens, config.maxPositionEmbeddings);
  }
}

/** Rejects a request before any work: empty or out-of-range prompt, or one that cannot fit. */
function validate(request: GenerateRequest, config: DecoderConfig): void {
  const prompt = request.promptTokens;
  if (!prompt.length) throw new InvalidGenerateRequestError("the prompt is empty: at least one token is needed");
  const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= config.vocabSize);
  if (bad !== undefined) throw new InvalidGenerateRequestError(`prompt token ${bad} is not in the vocabulary (0..${config.vocabSize - 1})`);
  const maxTokens = request.params.maxTokens;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new InvalidGenerateRequestError(`maxTokens must be a positive integer, got ${maxTokens}`);
  const top = request.promptLogprobs;
  if (top !== undefined && !(Number.isInteger(top) && top >= 0)) throw new InvalidGenerateRequestError(`promptLogprobs must be a non-negative integer, got ${top}`);
  if (prompt.length + maxTokens > config.maxPositionEmbeddings) {
    throw new ContextOverflowError(prompt.length, maxTokens, config.maxPositionEmbeddings);
  }
}
